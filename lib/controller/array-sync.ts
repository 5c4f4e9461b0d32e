// Keeps one controller's RaidVolume in step with what the other processes decided: member states
// written to the registry (a failure seen by another controller, `nbdraid fail`, a rebuild onto a
// new member) and rebuild progress recorded in the rebuild task's partitions. Runs on registry
// changes, and on the I/O path only after a lease had to be fetched (see LeaseGate); its reads go
// through the coordination thread.
import type { ArrayRecord, Coordinator, MemberRecord } from '../coordination/index.js';
import { openMember } from '../raid/members.js';
import type { IoFence } from '../transport/io-fence.js';
import { parseUuid } from '../raid/superblock.js';
import type { RaidVolume } from '../raid/volume.js';
import { Coalesced } from '../coalesced.js';
import type { Log } from '../log.js';
import type { Checkpoint, RebuildDataset } from './steps.js';

export class ArraySync {
  private revision = -1;
  private readonly runs = new Coalesced(() => this.syncOnce());

  constructor(
    private readonly coord: Coordinator,
    private readonly volume: RaidVolume,
    private readonly arrayName: string,
    private readonly log: Log,
    /** The controller's member fence: a spare opened here passes it too. */
    private readonly fence?: IoFence,
  ) {}

  /** Brings the volume up to date; concurrent callers share one run (and a change during it reruns). */
  sync(): Promise<void> {
    return this.runs.run();
  }

  private async syncOnce(): Promise<void> {
    const rec = await this.coord.thread.ops.arrayGet(this.arrayName);
    if (rec && rec.revision !== this.revision) {
      this.revision = rec.revision;
      for (const m of rec.members) await this.applyMember(rec, m);
    }
    await this.syncRecovery();
  }

  private async applyMember(rec: ArrayRecord, m: MemberRecord): Promise<void> {
    if (m.slot === null || m.slot >= this.volume.slots.length) return;
    const slot = this.volume.slots[m.slot];
    const localPath = this.volume.meta.diskInSlot(m.slot)?.path;
    const here = slot.state !== 'faulty' && slot.state !== 'missing';
    try {
      // A member that another process failed, removed or replaced is failed here first.
      const gone = m.state === 'faulty' || m.state === 'removed' || (m.state === 'rebuilding' && localPath !== m.path);
      if (gone && here && (localPath === m.path || m.state === 'rebuilding')) {
        await this.volume.failMember(m.slot, 'failed by another controller or by request', { force: true });
      }
      if (m.state === 'removed' && slot.state === 'faulty' && localPath === m.path) {
        await this.volume.removeMember(m.slot);
      } else if (m.state === 'rebuilding' && (slot.state === 'faulty' || slot.state === 'missing')) {
        const handle = await openMember(m.path, { lock: 'shared', fence: this.fence });
        await this.volume.addRebuildMember(m.slot, handle.device, { path: m.path, deviceUuid: parseUuid(m.deviceUuid), devNumber: m.devNumber });
      } else if (m.state === 'active' && slot.state === 'rebuilding' && localPath === m.path) {
        this.volume.markRecovered(m.slot, 0, this.volume.g.stripes);
        await this.volume.finishRebuild(m.slot);
      }
    } catch (err) {
      this.log({ event: 'member.apply-failed', level: 'warn', message: `${rec.name}: could not apply ${m.state} to member ${m.slot}: ${(err as Error).message}`, fields: { slot: m.slot, state: m.state } });
    }
  }

  /** Marks stripes that other controllers rebuilt (completed partitions, checkpoints) as recovered. */
  private async syncRecovery(): Promise<void> {
    if (!this.volume.slots.some((s) => s.state === 'rebuilding')) return;
    const ops = this.coord.thread.ops;
    const task = (await ops.tasks(this.arrayName, true)).find((t) => t.kind === 'rebuild');
    if (!task) return;
    const { slot } = task.dataset as RebuildDataset;
    if (this.volume.slots[slot]?.state !== 'rebuilding') return;
    for (const p of await ops.partitions(task.id)) {
      const next = p.state === 'COMPLETE' ? p.stripeEnd : (p.checkpoint as Checkpoint | null)?.next ?? p.stripeStart;
      if (next > p.stripeStart) this.volume.markRecovered(slot, p.stripeStart, next - p.stripeStart);
    }
    this.checkpointRecovery(slot);
  }

  /**
   * md's recovery_offset: the recovered prefix goes into the superblocks each time it has grown by
   * a sixteenth of the member since it was last recorded, so a restarted rebuild need not start over.
   */
  private checkpointRecovery(slot: number): void {
    const s = this.volume.slots[slot];
    const g = this.volume.g;
    const recorded = (this.volume.meta.diskInSlot(slot)?.recoveryOffset ?? 0) / (g.chunk / 512);
    const prefix = s.recovered.prefix();
    if (prefix >= g.stripes || prefix - recorded < Math.max(1, Math.floor(g.stripes / 16))) return;
    this.volume.checkpointRecovery(slot).catch((err: Error) => this.log({ event: 'recovery.checkpoint-failed', level: 'warn', message: `${this.arrayName}: recovery offset not recorded: ${err.message}`, fields: { slot } }));
  }
}
