// Runs an external client (nbdinfo, nbdcopy, nbdsh, qemu-img, qemu-io, fio, mount tools) with a
// time limit. A failure throws an error carrying the command line, exit status and output tails,
// so a failed assertion says what the tool printed.
import { spawn } from 'node:child_process';
import { trackGroup } from './cleanup.js';

export interface ToolOptions {
  /** Kill the tool (and its process group) after this long; default 60 s. */
  timeoutMs?: number;
  /** Written to the tool's stdin, which is then closed. */
  input?: string | Buffer;
  env?: Record<string, string>;
  cwd?: string;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  allowFailure?: boolean;
}

export interface ToolResult {
  command: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

const OUTPUT_CAP = 32 << 20;

/** PATH with the system directories first: nbdsh runs `python3`, which must be the one with libnbd. */
export function toolPath(): string {
  return ['/usr/sbin', '/usr/bin', '/sbin', '/bin', process.env.PATH ?? ''].join(':');
}

export function describeFailure(r: ToolResult, why: string): string {
  const tail = (s: string): string => (s.length > 4000 ? `...${s.slice(-4000)}` : s);
  return `${r.command}: ${why} after ${r.ms} ms\n--- stderr ---\n${tail(r.stderr)}\n--- stdout ---\n${tail(r.stdout)}`;
}

export function runTool(cmd: string, args: string[], opts: ToolOptions = {}): Promise<ToolResult> {
  const command = [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a}'`)).join(' ');
  const started = Date.now();
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: { ...process.env, PATH: toolPath(), ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  trackGroup(child);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  const collect = (into: Buffer[]) => {
    let bytes = 0;
    return (b: Buffer) => {
      bytes += b.length;
      if (bytes < OUTPUT_CAP) into.push(b);
    };
  };
  child.stdout.on('data', collect(out));
  child.stderr.on('data', collect(err));
  child.stdin.on('error', () => {});
  child.stdin.end(opts.input);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid, 'SIGKILL');
  }, opts.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${command}: cannot start: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const r: ToolResult = {
        command, code, signal, ms: Date.now() - started,
        stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(),
      };
      if (timedOut) reject(new Error(describeFailure(r, `timed out (limit ${opts.timeoutMs ?? 60_000} ms)`)));
      else if (code !== 0 && !opts.allowFailure) reject(new Error(describeFailure(r, `exited ${code ?? signal}`)));
      else resolve(r);
    });
  });
}

/** Signals a whole process group started by runTool or a server helper; ignores one already gone. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // the group has already exited
  }
}

/** Runs a tool and parses its stdout as JSON. */
export async function runJson<T>(cmd: string, args: string[], opts: ToolOptions = {}): Promise<T> {
  const r = await runTool(cmd, args, opts);
  try {
    return JSON.parse(r.stdout) as T;
  } catch (e) {
    throw new Error(describeFailure(r, `printed invalid JSON (${(e as Error).message})`));
  }
}
