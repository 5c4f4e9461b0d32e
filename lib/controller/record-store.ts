// The controller's MetadataStore: a volume's membership change is a transaction on the array's
// record (lib/coordination/member-change.ts), and then the superblocks are written from the
// record by the one SuperblockWriter. A change the record refuses (another controller changed the
// member first) comes back as StaleChange: nothing was written, the volume re-reads.
import { type RecordedChange, persist } from '../coordination/index.js';
import { NbdraidError } from '../errors.js';
import { type MemberChange, type MetadataStore, StaleChange } from '../raid/metadata-store.js';
import type { SuperblockWriter } from './superblock-writer.js';

/** Where member changes are recorded: the coordination thread, or a registry of this thread (tools). */
export interface MemberRecords {
  changeMember(arrayName: string, change: RecordedChange): Promise<void> | void;
}

export class RecordStore implements MetadataStore {
  /**
   * `keepTrying`: whether a change that met the database away (EAGAIN) may wait for it and be made
   * again (persist.ts): a change applies idempotently (member-change.ts), so one whose answer was
   * lost is safe to repeat. Without it the change fails, and the volume goes offline.
   */
  constructor(private readonly records: MemberRecords, private readonly writer: SuperblockWriter, private readonly keepTrying: () => boolean = () => false) {}

  async commit(change: MemberChange): Promise<void> {
    try {
      await persist(async () => this.records.changeMember(this.writer.arrayName, change), this.keepTrying);
    } catch (err) {
      if (err instanceof NbdraidError && err.code === 'ESTALE') throw new StaleChange(err.context, err.message.slice(err.context.length + 2));
      throw err;
    }
    await this.writer.sync();
  }
}
