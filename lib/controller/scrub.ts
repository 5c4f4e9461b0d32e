// Starting scrubs from outside a controller (the CLI): the task is written with no initiator, so
// the first live controller of the array adopts it, runs its partitions with the others and its
// completion action records the result.
import type { AdminStore } from '../coordination/admin.js';
import type { ArrayRecord, TaskRecord } from '../coordination/index.js';
import { NbdraidError } from '../errors.js';
import { Geometry, parseLayout } from '../raid/geometry.js';
import { planRange, regionStripes } from './plans.js';

function geometryOf(rec: ArrayRecord): Geometry {
  return new Geometry({
    members: rec.raidDisks, chunk: rec.chunk, layout: parseLayout(rec.layout),
    dataOffset: rec.dataOffset, stripes: Math.floor(rec.memberSize / rec.chunk),
  });
}

/** Writes a check or repair task over the whole array; refuses while another scrub or a rebuild runs. */
export async function startScrub(tasks: Pick<AdminStore, 'listTasks' | 'createTask'>, rec: ArrayRecord, kind: 'check' | 'repair'): Promise<TaskRecord> {
  const busy = (await tasks.listTasks({ arrayName: rec.name, activeOnly: true })).find((t) => ['check', 'repair', 'rebuild'].includes(t.kind));
  if (busy) {
    throw new NbdraidError('EBUSY', `${kind} ${rec.name}`, `task ${busy.id} (${busy.kind}) is running; wait for it or cancel it (nbdraid tasks cancel ${busy.id})`);
  }
  const g = geometryOf(rec);
  return tasks.createTask({ kind, arrayName: rec.name, dataset: {}, partitions: planRange(g.stripes, regionStripes(g)), initiator: null });
}

