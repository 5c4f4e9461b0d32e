// Child processes for multi-process tests: spawn compiled JS, wait for a line, kill, collect.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { trackGroup } from '../../harness/cleanup.js';

export interface Child {
  proc: ChildProcess;
  pid: number;
  /** Lines the child wrote to stdout so far. */
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first stdout line matching `re` (rejects if the child exits first). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

/** Runs a node script (with `env` added to ours) in its own process group. */
export function spawnNode(script: string, args: string[], env: Record<string, string> = {}): Child {
  // Its own process group, recorded so that it dies with this test process whatever ends it.
  const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'], detached: true, env: { ...process.env, ...env } });
  trackGroup(proc);
  const lines: string[] = [];
  const watchers = new Set<(l: string) => void>();
  createInterface({ input: proc.stdout! }).on('line', (l) => {
    lines.push(l);
    for (const w of watchers) w(l);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  const waitFor = (re: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> => new Promise((resolve, reject) => {
    const hit = lines.map((l) => l.match(re)).find((m) => m);
    if (hit) return resolve(hit);
    const timer = setTimeout(() => reject(new Error(`${script}: no line matching ${re} within ${timeoutMs} ms`)), timeoutMs);
    const w = (l: string): void => {
      const m = l.match(re);
      if (!m) return;
      clearTimeout(timer);
      watchers.delete(w);
      resolve(m);
    };
    watchers.add(w);
    void exited.then((e) => {
      if (!watchers.has(w)) return;
      clearTimeout(timer);
      reject(new Error(`${script} exited (${e.code ?? e.signal}) before a line matching ${re}`));
    });
  });
  return { proc, pid: proc.pid!, lines, exited, waitFor };
}

/** SIGKILLs a child and waits until it is gone. */
export async function killHard(c: Child): Promise<void> {
  c.proc.kill('SIGKILL');
  await c.exited;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The value of `p`, or 'timeout' after `ms` (the timer does not outlive the race). */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), ms); });
  try {
    return await Promise.race([p, expiry]);
  } finally {
    clearTimeout(timer);
  }
}
