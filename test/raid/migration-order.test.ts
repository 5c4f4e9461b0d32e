// Property: over many (n, chunk, layout) -> (n', chunk', layout') in place, with and without room to
// move the data offset, running partitions in any order the dependency predicate allows (random
// among the runnable ones, up to 3 at once between their read and their write) never writes over
// source not yet copied, never leaves a partition waiting for ever, and leaves the destination
// holding exactly the volume. Under md-resumable, every partition past the completed run also
// keeps its source intact. Mutations of the predicate must make the simulation find clobbers.
import t from 'tap';
import { Geometry, type LayoutName, LAYOUTS } from '../../lib/raid/geometry.js';
import type { GeometryChange } from '../../lib/raid/migration-geometry.js';
import { type MigrationOptions, planMigration } from '../../lib/raid/migration-offset.js';
import { type OrderPolicy, checkOrderable, criticalPartitions, dependencies, mayRun } from '../../lib/raid/migration-order.js';
import type { MigrationPlan } from '../../lib/raid/migration-plan.js';
import { type Predicate, simulate } from './migration-sim.js';
import { rng } from '../helpers/prng.js';

const K = 1024;
const LAYOUT_NAMES = Object.keys(LAYOUTS) as LayoutName[];
const CHUNKS = [4 * K, 16 * K, 64 * K, 512 * K];
type Room = 'none' | 'before' | 'after';

interface Case { name: string; source: Geometry; change: GeometryChange; room: Room; partitionUnits: number }

function geometry(members: number, chunk: number, layout: LayoutName, dataOffset: number, usedBytes: number): Geometry {
  return new Geometry({ members, chunk, layout, dataOffset, stripes: Math.floor(usedBytes / chunk) });
}

/** Plan options for a room kind; the members are exactly as big as the source needs with 'none'. */
function options(c: Case, unit: number): MigrationOptions {
  const used = c.source.stripes * c.source.chunk;
  const end = c.source.dataOffset + used;
  const room = {
    none: { lowest: c.source.dataOffset, memberBytes: end },
    before: { lowest: 8192, memberBytes: end },
    after: { lowest: c.source.dataOffset, memberBytes: end + 2 * used },
  }[c.room];
  return { room, partitionBytes: unit * c.partitionUnits };
}

function plan(c: Case): MigrationPlan {
  const unit = planMigration(c.source, c.change).partitionBytes;
  return planMigration(c.source, c.change, options(c, unit));
}

function named(): Case[] {
  const M = 1 << 20;
  const ls = (n: number, chunk: number) => geometry(n, chunk, 'left-symmetric', 16 * M, 12 * 512 * K);
  return [
    { name: 'grow 3 -> 4', source: ls(3, 64 * K), change: { members: 4 }, room: 'before', partitionUnits: 1 },
    { name: 'grow 4 -> 5', source: ls(4, 64 * K), change: { members: 5 }, room: 'before', partitionUnits: 2 },
    { name: 'grow 3 -> 4, no room', source: ls(3, 64 * K), change: { members: 4 }, room: 'none', partitionUnits: 1 },
    { name: 'grow 4 -> 5, room after', source: ls(4, 64 * K), change: { members: 5 }, room: 'after', partitionUnits: 1 },
    { name: 'chunk 512K -> 64K', source: ls(4, 512 * K), change: { chunk: 64 * K }, room: 'before', partitionUnits: 1 },
    { name: 'chunk 512K -> 64K, no room', source: ls(4, 512 * K), change: { chunk: 64 * K }, room: 'none', partitionUnits: 1 },
    { name: 'layout left-symmetric -> right-asymmetric', source: ls(4, 64 * K), change: { layout: 'right-asymmetric' }, room: 'before', partitionUnits: 3 },
    { name: 'all three: 3 -> 5, 512K -> 64K, right-asymmetric', source: ls(3, 512 * K), change: { members: 5, chunk: 64 * K, layout: 'right-asymmetric' }, room: 'before', partitionUnits: 1 },
  ];
}

function randomCases(rand: () => number, count: number): Case[] {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)];
  const out: Case[] = [];
  while (out.length < count) {
    const n = 3 + Math.floor(rand() * 4);
    const chunk = pick(CHUNKS);
    const change: GeometryChange = { members: n + pick([0, 0, 1, 2]), chunk: pick(CHUNKS), layout: pick(LAYOUT_NAMES) };
    const used = Math.max(chunk, 512 * K) * (2 + Math.floor(rand() * 6));
    const source = geometry(n, chunk, pick(LAYOUT_NAMES), (1 << 20) * (1 + Math.floor(rand() * 8)), used);
    const c: Case = { name: '', source, change, room: pick(['none', 'before', 'after'] as Room[]), partitionUnits: 1 + Math.floor(rand() * 3) };
    c.name = `${n}x${chunk / K}K ${source.layout} -> ${change.members}x${(change.chunk as number) / K}K ${change.layout}, room ${c.room}, ${c.partitionUnits} units`;
    try {
      plan(c);
      out.push(c);
    } catch {
      // nothing to change, or not enough space in the destination: not a migration
    }
  }
  return out;
}

const predicate = (p: MigrationPlan, policy: OrderPolicy): Predicate => {
  const deps = dependencies(p);
  return (states, i) => mayRun(p, deps, states, i, policy);
};

/** Each partition's dependencies but itself. */
const others = (p: MigrationPlan): number[][] => dependencies(p).map((ds, i) => ds.filter((q) => q !== i));

const cases = [...named(), ...randomCases(rng(0x5eed), 60)];

t.test('the predicate never lets a destination write clobber unread source', async (t) => {
  let runs = 0;
  for (const c of cases) {
    const p = plan(c);
    for (const policy of ['overlapped-complete', 'md-resumable'] as OrderPolicy[]) {
      checkOrderable(p, dependencies(p), policy);
      for (let seed = 1; seed <= 4; seed++) {
        const r = simulate(p, predicate(p, policy), rng(seed * 7919 + runs), 3, policy === 'md-resumable');
        runs++;
        const ok = r.clobbers.length === 0 && r.stuck.length === 0 && r.mismatches === 0 && r.brokenResume.length === 0;
        if (!ok) {
          t.fail(`${c.name} (${policy}, seed ${seed}): order ${r.order.join(' ')}`, {
            clobbers: r.clobbers.slice(0, 5), stuck: r.stuck, mismatches: r.mismatches, brokenResume: r.brokenResume.slice(0, 5),
          });
        }
      }
    }
  }
  t.ok(runs >= 500, `${runs} simulated migrations over ${cases.length} geometry pairs`);
});

t.test('with room, grows need no critical section and run in plain order', async (t) => {
  for (const c of named().filter((x) => x.room !== 'none')) {
    const p = plan(c);
    t.same(criticalPartitions(p), [], `${c.name}: no partition writes over its own source`);
    const deps = dependencies(p);
    const earlier = (q: number, i: number) => (p.direction === 'forwards' ? q < i : q > i);
    t.ok(deps.every((ds, i) => ds.every((q) => earlier(q, i))), `${c.name}: ${p.direction}, every dependency comes before`);
  }
});

t.test('mutations: a weakened predicate lets the simulation find clobbers', async (t) => {
  const withDeps = cases.filter((c) => others(plan(c)).some((ds) => ds.length > 0));
  t.ok(withDeps.length >= 10, `${withDeps.length} pairs have dependencies`);
  const mutants: [string, (p: MigrationPlan) => Predicate][] = [
    ['no predicate', () => (states, i) => states[i] === 'pending'],
    ['running counts as complete', (p) => {
      const deps = others(p);
      return (states, i) => states[i] === 'pending' && deps[i].every((q) => states[q] !== 'pending');
    }],
    ['the last dependency forgotten', (p) => {
      const deps = others(p).map((ds) => ds.slice(0, -1));
      return (states, i) => states[i] === 'pending' && deps[i].every((q) => states[q] === 'complete');
    }],
  ];
  for (const [name, mutant] of mutants) {
    let caught = 0;
    for (const c of withDeps) {
      const p = plan(c);
      const found = [1, 2, 3, 4, 5, 6].some((seed) => simulate(p, mutant(p), rng(seed), 3).clobbers.length > 0);
      if (found) caught++;
    }
    t.ok(caught >= withDeps.length / 2, `${name}: clobbers found in ${caught} of ${withDeps.length} pairs`);
  }
});
