// fio's JSON report: where fio writes it, how it is read (the one parser), and runFio, which runs a
// job file from scripts/fio/ with fio's nbd engine and returns the report.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describeFailure, runTool, type ToolResult } from './run-tool.js';
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
  /** Percent of the job's runtime spent in user and system mode, and that runtime (ms). */
  usr_cpu?: number;
  sys_cpu?: number;
  job_runtime?: number;
  read: FioIo;
  write: FioIo;
  trim: FioIo;
}

export interface FioReport {
  jobs: FioJob[];
}

/** The report, whether fio or any job failed, and fio's stderr. */
export type FioResult = FioReport & { failed: boolean; stderr: string };

/** A temporary file for the report and the fio arguments that write it there. */
export function reportFile(): { path: string; args: string[]; remove(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdraid-fio-'));
  const out = path.join(dir, 'report.json');
  return { path: out, args: ['--output-format=json', `--output=${out}`], remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * The report written to `file` by the run `r`. Throws on a failure unless allowFailure; a missing
 * report is an error, or with noReport 'failed' (a fio killed on purpose) a failed empty run.
 */
export function readReport(file: string, r: ToolResult, allowFailure: boolean, noReport: 'error' | 'failed' = 'error'): FioResult {
  // The nbd engine prints "fio: connected to NBD server" lines ahead of the JSON.
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const start = text.indexOf('{\n');
  if (start < 0 && noReport === 'failed') return { jobs: [], failed: true, stderr: r.stderr };
  if (start < 0) throw new Error(describeFailure({ ...r, stdout: text.slice(0, 4000) }, 'wrote no JSON report'));
  const report = JSON.parse(text.slice(start)) as FioReport;
  const failed = r.code !== 0 || report.jobs.some((j) => j.error !== 0);
  if (failed && !allowFailure) throw new Error(describeFailure({ ...r, stdout: text.slice(0, 4000) }, 'reported a failure'));
  return { ...report, failed, stderr: r.stderr };
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

export async function runFio(run: FioRun): Promise<FioResult> {
  const report = reportFile();
  try {
    const args = [...report.args, ...(run.section ? [`--section=${run.section}`] : []), fioJobPath(run.jobFile)];
    const r = await runTool('fio', args, { env: run.env, timeoutMs: run.timeoutMs ?? 120_000, allowFailure: true });
    return readReport(report.path, r, run.allowFailure ?? false);
  } finally {
    report.remove();
  }
}
