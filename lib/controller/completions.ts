// Completion actions, run once per task by its initiator (or the controller that adopted it) when
// every partition is COMPLETE. They must be idempotent: an initiator that dies inside one has it
// run again by its successor.
import type { Coordinator, TaskRecord } from '../coordination/index.js';
import type { Log } from '../log.js';
import type { RaidVolume } from '../raid/volume.js';
import type { ArraySync } from './array-sync.js';
import { type Checkpoint, type Mismatch, type RebuildDataset, describeMismatch } from './steps.js';

/** Mismatches kept in a task's result; the count is always exact. */
const MAX_LISTED = 1000;

export function registerCompletions(coord: Coordinator, volume: RaidVolume, arrayName: string, sync: ArraySync,
  log: Log): void {
  const mine = (t: TaskRecord) => t.arrayName === arrayName;

  coord.onCompletion('rebuild', async (task) => {
    if (!mine(task)) throw new Error(`task of array ${task.arrayName}, served elsewhere`);
    const { slot, path } = task.dataset as RebuildDataset;
    await sync.sync();
    if (volume.slots[slot]?.state === 'rebuilding') {
      volume.markRecovered(slot, 0, volume.g.stripes);
      await volume.finishRebuild(slot);
    }
    // The volume's store made it active in the record; a member changed meanwhile refused that.
    const m = (await coord.thread.ops.arrayGet(arrayName))?.members.find((x) => x.path === path);
    if (m?.state !== 'active' || m.slot !== slot) {
      throw new Error(`${path} is ${m?.state ?? 'gone'} in the record, not active in slot ${slot}: it was changed while the rebuild finished`);
    }
    log({ event: 'rebuild.complete', message: `${arrayName}: rebuild of slot ${slot} complete; array optimal`, fields: { task: task.id, slot, path } });
    return { slot, path };
  });

  const scrubResult = async (task: TaskRecord, repaired: boolean) => {
    const stripes = (await coord.thread.ops.partitions(task.id)).flatMap((p) => (p.checkpoint as Checkpoint | null)?.mismatches ?? []);
    const list: Mismatch[] = stripes.slice(0, MAX_LISTED).map((s) => describeMismatch(volume, s, repaired));
    log({
      event: `${task.kind}.complete`,
      message: `${arrayName}: ${task.kind} found ${stripes.length} mismatched stripes${repaired && stripes.length > 0 ? ' (parity rewritten)' : ''}`,
      fields: { task: task.id, mismatches: stripes.length, repaired },
    });
    return { mismatches: stripes.length, list, truncated: stripes.length > MAX_LISTED };
  };
  coord.onCompletion('check', (task) => scrubResult(task, false));
  coord.onCompletion('repair', (task) => scrubResult(task, true));
  coord.onCompletion('resync', async (task) => {
    const result = await scrubResult(task, true);
    log({ event: 'array.clean', message: `${arrayName}: resync complete; array clean`, fields: { task: task.id } });
    return result;
  });
}
