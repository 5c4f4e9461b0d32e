// Clean-up that always runs. Children started detached (their own process group) are recorded in
// one registry and SIGKILLed, group and all, when this test process exits for any reason: a
// normal end, process.exit after a tap timeout, or SIGTERM/SIGINT/SIGHUP. A child that outlived
// its test would otherwise keep ports, files and leases. Teardowns registered through
// safeTeardown catch and report their own failure, so one that throws cannot stop the others.
import type { ChildProcess } from 'node:child_process';

const groups = new Set<number>();
let installed = false;

function killAll(): void {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the group has already exited
    }
  }
  groups.clear();
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAll);
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAll();
      // Keep the default behaviour (die of the signal) unless someone else handles it.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

/**
 * Records a child started with `detached: true` (so its pid is its process group's id): its
 * group is SIGKILLed at exit unless it has exited before.
 */
export function trackGroup(child: ChildProcess): void {
  const pid = child.pid;
  if (pid === undefined) return;
  install();
  groups.add(pid);
  child.once('exit', () => groups.delete(pid));
}

export interface Hooks {
  teardown(fn: () => unknown): void;
  comment?(...args: unknown[]): void;
}

/**
 * Registers `fn` as a teardown of its own that never throws: a failure is reported with
 * t.comment and makes the test process exit non-zero (so the file fails), and the teardowns
 * after it still run.
 */
export function safeTeardown(t: Hooks, what: string, fn: () => unknown): void {
  t.teardown(async () => {
    try {
      await fn();
    } catch (err) {
      const msg = `teardown failed (${what}): ${(err as Error)?.stack ?? String(err)}`;
      if (t.comment) t.comment(msg);
      else process.stderr.write(`${msg}\n`);
      process.exitCode = 1;
    }
  });
}
