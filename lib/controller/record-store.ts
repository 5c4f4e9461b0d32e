// The controller's MetadataStore: a volume's membership change is a transaction on the array's
// record (lib/coordination/member-change.ts), and then the superblocks are written from the
// record by the one SuperblockWriter. A change the record refuses (another controller changed the
// member first) comes back as StaleChange: nothing was written, the volume re-reads.
import type { RecordedChange } from '../coordination/index.js';
import { NbdraidError } from '../errors.js';
import { type MemberChange, type MetadataStore, StaleChange } from '../raid/metadata-store.js';
import type { SuperblockWriter } from './superblock-writer.js';

/** Where member changes are recorded: the coordination thread, or a registry of this thread (tools). */
export interface MemberRecords {
  changeMember(arrayName: string, change: RecordedChange): Promise<void> | void;
}

export class RecordStore implements MetadataStore {
  constructor(private readonly records: MemberRecords, private readonly writer: SuperblockWriter) {}

  async commit(change: MemberChange): Promise<void> {
    try {
      await this.records.changeMember(this.writer.arrayName, change);
    } catch (err) {
      if (err instanceof NbdraidError && err.code === 'ESTALE') throw new StaleChange(err.context, err.message.slice(err.context.length + 2));
      throw err;
    }
    await this.writer.sync();
  }
}
