// One row of a side-by-side benchmark: the same fio job against two servers (or two states of
// one), alternating over rounds, `sync` before each timed run, the server's CPU time read around
// it; each side keeps its median round. Rows render with MB/s, IOPS, p99 and CPU s/GiB of both
// sides, the throughput and p99 ratios, and the goal.
import type { FioIo } from '../../harness/fio.js';
import { runTool } from '../../harness/run-tool.js';
import { type Measurement, cpuSeconds, measure, table } from './_common.js';

export interface Side {
  name: string;
  /** The serving process (its descendants are counted too). */
  pid: number;
  /** Runs the timed job once and returns fio's numbers of the measured direction. */
  run(): Promise<FioIo>;
}

/** ratio >= ratio, and when given, p99 ratio <= p99Ratio. */
export interface Goal { ratio: number; p99Ratio?: number }

export interface Row {
  label: string;
  a: Measurement;
  b: Measurement;
  aName: string;
  bName: string;
  /** a's MB/s over b's. */
  ratio: number;
  /** a's p99 over b's. */
  p99Ratio: number;
  goal?: Goal;
  met?: boolean;
  /** Every round's measurement, in order. */
  rounds: { a: Measurement[]; b: Measurement[] };
}

async function timed(side: Side): Promise<Measurement> {
  await runTool('sync', [], { timeoutMs: 300_000 });
  const before = cpuSeconds(side.pid);
  const io = await side.run();
  return measure(io, cpuSeconds(side.pid) - before);
}

const median = (xs: Measurement[]): Measurement => [...xs].sort((p, q) => p.mbps - q.mbps)[Math.floor(xs.length / 2)];

/** `rounds` runs of each side, alternating (and swapping who goes first every round). */
export async function compareSides(label: string, a: Side, b: Side, rounds: number, goal?: Goal): Promise<Row> {
  const runs: { a: Measurement[]; b: Measurement[] } = { a: [], b: [] };
  for (let i = 0; i < rounds; i++) {
    const order = i % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const);
    for (const k of order) runs[k].push(await timed(k === 'a' ? a : b));
  }
  const [ma, mb] = [median(runs.a), median(runs.b)];
  const ratio = ma.mbps / mb.mbps;
  const p99Ratio = ma.p99LatencyUs / mb.p99LatencyUs;
  const met = goal && ratio >= goal.ratio && (goal.p99Ratio === undefined || p99Ratio <= goal.p99Ratio);
  const spread = (xs: Measurement[]): string => xs.map((m) => m.mbps.toFixed(0)).join('/');
  console.log(`  ${label}: ${a.name} ${spread(runs.a)} MB/s, ${b.name} ${spread(runs.b)} MB/s`);
  return { label, a: ma, b: mb, aName: a.name, bName: b.name, ratio, p99Ratio, goal, met, rounds: runs };
}

const fixed = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : '-');

function goalText(g?: Goal): string {
  if (!g) return '-';
  return `>= ${g.ratio.toFixed(1)}x${g.p99Ratio === undefined ? '' : `, p99 <= ${g.p99Ratio}x`}`;
}

function cells(m: Measurement): string[] {
  return [fixed(m.mbps, 1), fixed(m.iops, 0), fixed(m.p99LatencyUs / 1000, 2), fixed(m.cpuSecondsPerGiB, 2)];
}

export function renderRows(rows: Row[]): string {
  return table(
    ['row', 'MB/s', 'IOPS', 'p99 ms', 'CPU s/GiB', 'vs', 'MB/s', 'IOPS', 'p99 ms', 'CPU s/GiB', 'ratio', 'p99 ratio', 'goal', ''],
    rows.map((r) => [
      `${r.label} [${r.aName}]`, ...cells(r.a), r.bName, ...cells(r.b), fixed(r.ratio, 2), fixed(r.p99Ratio, 2),
      goalText(r.goal), r.goal === undefined ? '' : r.met ? 'met' : 'MISSED',
    ]),
  );
}
