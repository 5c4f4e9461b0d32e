// Pieces shared by the RAID and rebuild benchmarks: fio measurements, a plain-text table, and the
// JSON record under bench-results/ (host, tool versions, rows).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FioIo } from '../../test/helpers/fio.js';
import { runTool } from '../../test/helpers/run-tool.js';
import { repoRoot } from '../../test/helpers/server-process.js';

export interface Measurement {
  mbps: number;
  iops: number;
  meanLatencyUs: number;
  p99LatencyUs: number;
}

export function measure(io: FioIo): Measurement {
  return {
    mbps: io.bw_bytes / 1e6,
    iops: io.iops,
    meanLatencyUs: io.lat_ns.mean / 1000,
    p99LatencyUs: (io.clat_ns.percentile?.['99.000000'] ?? 0) / 1000,
  };
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
