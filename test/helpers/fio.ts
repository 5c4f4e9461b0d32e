// Runs a job file from scripts/fio/ with fio's nbd engine and returns fio's JSON report.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeFailure, runTool } from './run-tool.js';
import { repoRoot } from './server-process.js';

export interface FioIo {
  io_bytes: number;
  bw_bytes: number;
  iops: number;
  total_ios: number;
  lat_ns: { mean: number; percentile?: Record<string, number> };
  clat_ns: { mean: number; percentile?: Record<string, number> };
}

export interface FioJob {
  jobname: string;
  error: number;
  read: FioIo;
  write: FioIo;
  trim: FioIo;
}

export interface FioReport {
  jobs: FioJob[];
}

export interface FioRun {
  /** File name under scripts/fio/. */
  jobFile: string;
  /** The job file's ${VARIABLES}. */
  env: Record<string, string>;
  /** Run only this section of the job file. */
  section?: string;
  timeoutMs?: number;
  /** Resolve even when fio fails (verification errors); `failed` then says so. */
  allowFailure?: boolean;
}

const fioJobPath = (name: string): string => path.join(repoRoot, 'scripts/fio', name);

export async function runFio(run: FioRun): Promise<FioReport & { failed: boolean; stderr: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdraid-fio-'));
  const out = path.join(dir, 'report.json');
  try {
    const args = ['--output-format=json', `--output=${out}`];
    if (run.section) args.push(`--section=${run.section}`);
    args.push(fioJobPath(run.jobFile));
    const r = await runTool('fio', args, { env: run.env, timeoutMs: run.timeoutMs ?? 120_000, allowFailure: true });
    // The nbd engine prints "fio: connected to NBD server" lines ahead of the JSON.
    const text = fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '';
    const start = text.indexOf('{\n');
    if (start < 0) throw new Error(describeFailure(r, 'wrote no JSON report'));
    const report = JSON.parse(text.slice(start)) as FioReport;
    const failed = r.code !== 0 || report.jobs.some((j) => j.error !== 0);
    if (failed && !run.allowFailure) throw new Error(describeFailure({ ...r, stdout: text }, 'reported a failure'));
    return { ...report, failed, stderr: r.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
