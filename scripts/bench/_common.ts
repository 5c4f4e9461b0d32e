// Pieces shared by the benchmarks: fio measurements (with the serving processes' CPU time), a
// plain-text table, and the JSON record under bench-results/ (host, tool versions, rows).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FioIo } from '../../harness/fio.js';
import { runTool } from '../../harness/run-tool.js';
import { repoRoot } from '../../harness/server-process.js';

export interface Measurement {
  mbps: number;
  iops: number;
  meanLatencyUs: number;
  p99LatencyUs: number;
  /** CPU seconds (user + system) the server spent per GiB moved; NaN when not measured. */
  cpuSecondsPerGiB: number;
}

/** `cpuSeconds`: the server's CPU time over the run (cpuSeconds(pid) after minus before). */
export function measure(io: FioIo, cpuSeconds = NaN): Measurement {
  return {
    mbps: io.bw_bytes / 1e6,
    iops: io.iops,
    meanLatencyUs: io.lat_ns.mean / 1000,
    p99LatencyUs: (io.clat_ns.percentile?.['99.000000'] ?? 0) / 1000,
    cpuSecondsPerGiB: io.io_bytes > 0 ? cpuSeconds / (io.io_bytes / 2 ** 30) : NaN,
  };
}

const CLOCK_TICKS = 100; // USER_HZ: the unit of utime and stime in /proc/PID/stat on Linux

/** utime and stime of one process from /proc/PID/stat (fields 14 and 15), or 0 when it is gone. */
function ownCpuTicks(pid: number): { user: number; system: number } {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd on
    return { user: Number(fields[11]), system: Number(fields[12]) };
  } catch {
    return { user: 0, system: 0 };
  }
}

/** Child pids of every live process, from /proc. */
function childrenByParent(): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    out.set(ppid, [...(out.get(ppid) ?? []), Number(name)]);
  }
  return out;
}

/** User and system CPU seconds used so far by `pid` and its live descendants (a cluster's controllers). */
export function cpuTimes(pid: number): { user: number; system: number } {
  const children = childrenByParent();
  const sum = { user: 0, system: 0 };
  for (const todo = [pid]; todo.length > 0;) {
    const p = todo.pop() as number;
    const own = ownCpuTicks(p);
    sum.user += own.user / CLOCK_TICKS;
    sum.system += own.system / CLOCK_TICKS;
    todo.push(...(children.get(p) ?? []));
  }
  return sum;
}

/** CPU seconds (user + system) used so far by `pid` and its live descendants. */
export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

/** Left-aligned first column, right-aligned others, a rule under the head. */
export function table(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

export function verdict(value: number, goal: number): string {
  return value >= goal ? 'met' : 'MISSED';
}

async function versions(): Promise<Record<string, string>> {
  const first = async (cmd: string, args: string[]): Promise<string> =>
    (await runTool(cmd, args, { allowFailure: true }).catch(() => ({ stdout: 'not installed' }))).stdout.split('\n')[0].trim();
  return {
    node: process.version, fio: await first('fio', ['--version']), nbdkit: await first('nbdkit', ['--version']),
    btrfs: await first('btrfs', ['--version']), kernel: os.release(),
  };
}

/** Writes bench-results/NAME-TIMESTAMP.json and returns its path relative to the working directory. */
export async function saveResult(name: string, data: Record<string, unknown>): Promise<string> {
  const outDir = path.join(repoRoot, 'bench-results');
  fs.mkdirSync(outDir, { recursive: true });
  const out = path.join(outDir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const host = { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryBytes: os.totalmem() };
  fs.writeFileSync(out, JSON.stringify({ benchmark: name, host, versions: await versions(), ...data }, null, 2));
  return path.relative(process.cwd(), out);
}

/** A scratch directory under the system temp dir (same disk as the members), removed by the caller. */
export function scratch(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
