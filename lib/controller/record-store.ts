// The controller's MetadataStore: a volume's membership change is a transaction on the array's
// record (which re-reads the latest record and refuses what it no longer allows), and then the
// superblocks are written from the record by the one SuperblockWriter. Several controllers
// racing conflicting changes get exactly one order; the loser's change is refused (StaleChange)
// and it re-reads, never overwrites.
import type { ArrayRecord, ArrayRegistry, MemberRecord } from '../coordination/index.js';
import { type MemberChange, type MetadataStore, StaleChange } from '../raid/metadata-store.js';
import type { SuperblockWriter } from './superblock-writer.js';

export class RecordStore implements MetadataStore {
  constructor(private readonly arrays: ArrayRegistry, private readonly writer: SuperblockWriter) {}

  async commit(change: MemberChange): Promise<void> {
    // A change the record already shows (another controller applied it first) costs no update:
    // no revision bump that would send every controller to re-read. A stale one throws here.
    const now = this.arrays.require(this.writer.arrayName);
    const before = JSON.stringify(now.members);
    applyChange(now, change);
    if (JSON.stringify(now.members) !== before) this.arrays.update(this.writer.arrayName, (r) => applyChange(r, change));
    await this.writer.sync();
  }
}

/** Applies a member change to the record; idempotent, and StaleChange where the record moved on. */
function applyChange(r: ArrayRecord, c: MemberChange): void {
  const m = r.members.find((x) => x.slot === c.slot && (c.path === undefined || x.path === c.path) && x.state !== 'spare' && x.state !== 'removed')
    ?? r.members.find((x) => x.slot === c.slot && x.path === c.path);
  const stale = (why: string) => new StaleChange(`array ${r.name} slot ${c.slot}`, why);
  const describe = (x: MemberRecord | undefined) => (x ? `${x.path} is ${x.state}` : 'no such member in the record');
  switch (c.kind) {
    case 'failed':
      if (m && (m.state === 'active' || m.state === 'rebuilding')) {
        m.state = 'faulty';
        delete m.recoveryOffset;
      }
      return;
    case 'removed':
      if (m?.state === 'faulty') m.state = 'removed';
      return;
    case 'rebuilding':
      if (m?.state !== 'rebuilding') throw stale(`cannot rebuild onto it: ${describe(m)}`);
      return;
    case 'recovered':
      if (m?.state !== 'rebuilding') throw stale(`recovery progress not recorded: ${describe(m)}`);
      m.recoveryOffset = Math.max(m.recoveryOffset ?? 0, c.sectors);
      return;
    case 'rebuilt':
      if (m?.state === 'active') return;
      if (m?.state !== 'rebuilding') throw stale(`the rebuild cannot finish: ${describe(m)} (changed by another process first)`);
      m.state = 'active';
      delete m.recoveryOffset;
      return;
  }
}
