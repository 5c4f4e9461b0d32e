// A model of an in-place migration on members made of 4 KiB blocks (every bound of both
// geometries is a multiple of 4 KiB, so the model is exact). Each block holds a tag: the volume
// block it carries (1-based, 0 for zeroes) or the parity of the stripe it belongs to. Partitions
// start (read their source) and finish (write their destination) interleaved, in an order a
// predicate allows, chosen at random among what it allows. Reported: writes that landed on source
// not yet copied (its partition not complete), reads that found their source changed, and
// destination blocks that do not hold what the volume says.
import type { Geometry } from '../../lib/raid/geometry.js';
import { completedRun, type PartitionState } from '../../lib/raid/migration-order.js';
import type { MigrationPlan, Partition } from '../../lib/raid/migration-plan.js';

const BLOCK = 4096;
const DEST_PARITY = 100_000_000;

/** May partition `index` start, given the states? */
export type Predicate = (states: PartitionState[], index: number) => boolean;

export interface SimResult {
  clobbers: string[];
  /** Partitions never started: the predicate left them waiting. */
  stuck: number[];
  /** Destination blocks that differ from the volume after the run. */
  mismatches: number;
  /** md-resumable check: partitions past the completed run whose source was found changed. */
  brokenResume: string[];
  order: number[];
}

interface Model {
  plan: MigrationPlan;
  source: Int32Array[];
  dest: Int32Array[];
  /** Per source member block: the partition reading it, -1 for none. */
  owner: Int32Array[];
  states: PartitionState[];
  /** Started partitions' captured volume blocks. */
  captured: Map<number, Int32Array>;
  r: SimResult;
}

/** Runs the plan; at most `parallel` partitions between start and finish at once. */
export function simulate(plan: MigrationPlan, may: Predicate, rand: () => number, parallel = 3, checkResume = false): SimResult {
  const m = setup(plan);
  const running: number[] = [];
  for (;;) {
    const startable = running.length < parallel ? m.states.flatMap((_, i) => (may(m.states, i) ? [i] : [])) : [];
    if (startable.length === 0 && running.length === 0) break;
    if (startable.length > 0 && (running.length === 0 || rand() < 0.5)) {
      const i = startable[Math.floor(rand() * startable.length)];
      start(m, i);
      running.push(i);
    } else {
      const i = running.splice(Math.floor(rand() * running.length), 1)[0];
      finish(m, i);
      if (checkResume) resumeCheck(m);
    }
  }
  m.r.stuck = m.states.flatMap((s, i) => (s === 'pending' ? [i] : []));
  m.r.mismatches = finalMismatches(m);
  return m.r;
}

function setup(plan: MigrationPlan): Model {
  const { source: g, destination: d, placement } = plan.geometry;
  const blocks = Math.max(end(g), end(d)) / BLOCK;
  const source = Array.from({ length: g.members }, () => new Int32Array(blocks));
  for (let s = 0; s < g.stripes; s++) {
    for (let mem = 0; mem < g.members; mem++) eachBlock(g, s, mem, (b, tag) => { source[mem][b] = tag; });
  }
  const shared = (i: number) => (placement === 'in-place' && i < g.members ? source[i] : new Int32Array(blocks));
  const dest = Array.from({ length: d.members }, (_, i) => shared(i));
  const owner = source.map(() => new Int32Array(blocks).fill(-1));
  for (const p of plan.partitions) for (const r of p.reads) owner[r.member].fill(p.index, (r.first * 512) / BLOCK, (r.end * 512) / BLOCK);
  return {
    plan, source, dest, owner, states: plan.partitions.map(() => 'pending'), captured: new Map(),
    r: { clobbers: [], stuck: [], mismatches: 0, brokenResume: [], order: [] },
  };
}

function end(g: Geometry): number {
  return g.dataOffset + g.stripes * g.chunk;
}

/** Calls fn(member block, tag) for each block of member `mem`'s chunk in stripe `s`, as g lays out the volume. */
function eachBlock(g: Geometry, s: number, mem: number, fn: (block: number, tag: number) => void, parityBase = 0): void {
  const first = g.memberByte(s, 0) / BLOCK;
  const d = g.dataIndex(s, mem);
  const volBlock = (s * g.stripeData + d * g.chunk) / BLOCK;
  for (let j = 0; j < g.chunk / BLOCK; j++) fn(first + j, d < 0 ? -(parityBase + s + 1) : volBlock + j + 1);
}

/** The tag a block of the source holds before the migration (the same rule as setup). */
function sourceTags(p: Partition, g: Geometry, fn: (mem: number, block: number, tag: number) => void): void {
  if (!p.sourceStripes) return;
  for (let s = p.sourceStripes.first; s < p.sourceStripes.end; s++) {
    for (let mem = 0; mem < g.members; mem++) eachBlock(g, s, mem, (b, tag) => fn(mem, b, tag));
  }
}

function start(m: Model, i: number): void {
  const p = m.plan.partitions[i];
  const g = m.plan.geometry.source;
  m.states[i] = 'running';
  m.r.order.push(i);
  const lo = p.volume.lo / BLOCK;
  const got = new Int32Array((p.volume.hi - p.volume.lo) / BLOCK);
  sourceTags(p, g, (mem, b, tag) => {
    const now = m.source[mem][b];
    if (now !== tag) m.r.clobbers.push(`partition ${i} read member ${mem} block ${b}: ${now}, expected ${tag}`);
    if (tag > 0) got[tag - 1 - lo] = now;
  });
  m.captured.set(i, got);
}

function finish(m: Model, i: number): void {
  const p = m.plan.partitions[i];
  const d = m.plan.geometry.destination;
  const got = m.captured.get(i) as Int32Array;
  const lo = p.volume.lo / BLOCK;
  for (let k = p.destinationStripes.first; k < p.destinationStripes.end; k++) {
    for (let mem = 0; mem < d.members; mem++) {
      eachBlock(d, k, mem, (b, tag) => {
        const owner = mem < m.owner.length && m.dest[mem] === m.source[mem] ? m.owner[mem][b] : -1;
        if (owner >= 0 && owner !== i && m.states[owner] !== 'complete') {
          m.r.clobbers.push(`partition ${i} wrote member ${mem} block ${b}, source of partition ${owner} (${m.states[owner]})`);
        }
        m.dest[mem][b] = tag < 0 ? tag : got[tag - 1 - lo];
      }, DEST_PARITY);
    }
  }
  m.states[i] = 'complete';
}

/** Partitions past md's boundary must still find their source as it was. */
function resumeCheck(m: Model): void {
  const inRun = completedRun(m.plan, m.states);
  for (const p of m.plan.partitions) {
    if (inRun(p.index)) continue;
    let bad = 0;
    sourceTags(p, m.plan.geometry.source, (mem, b, tag) => { if (m.source[mem][b] !== tag) bad++; });
    if (bad > 0) m.r.brokenResume.push(`partition ${p.index} (${m.states[p.index]}): ${bad} source blocks changed`);
  }
}

function finalMismatches(m: Model): number {
  const { source: g, destination: d } = m.plan.geometry;
  const volumeBlocks = g.size / BLOCK;
  let bad = 0;
  for (let k = 0; k < d.stripes; k++) {
    for (let mem = 0; mem < d.members; mem++) {
      eachBlock(d, k, mem, (b, tag) => {
        const want = tag < 0 ? tag : tag <= volumeBlocks ? tag : 0;
        if (m.dest[mem][b] !== want) bad++;
      }, DEST_PARITY);
    }
  }
  return bad;
}
