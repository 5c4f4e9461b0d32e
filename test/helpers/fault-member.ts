// A member whose I/O fails on command, through the real file path: nbdkit's memory plugin behind
// its error filter, served on a unix socket and mounted as a plain file with nbdfuse. The
// controller opens, locks and pwrites that file like any other member; creating the trigger file
// makes every write to it fail with EIO (reads keep working), removing it heals it.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { safeTeardown, trackGroup } from './cleanup.js';
import { waitUntil } from './deadline.js';
import { killGroup, runTool, toolPath } from './run-tool.js';
import type { TestHooks } from './server-process.js';

export interface FaultMember {
  /** The member file (inside the nbdfuse mount). */
  file: string;
  /** From now on every write to the member fails with EIO. */
  failWrites(): void;
  healWrites(): void;
}

function startDaemon(cmd: string, args: string[]): { pid: number; exited: Promise<void>; stderr: () => string } {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true, env: { ...process.env, PATH: toolPath() } });
  trackGroup(child);
  let err = '';
  child.stderr?.on('data', (b: Buffer) => { if (err.length < 1 << 16) err += b.toString(); });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return { pid: child.pid as number, exited, stderr: () => err };
}

/** Starts nbdkit + nbdfuse for a member of `size` bytes; everything is torn down with the test. */
export async function startFaultMember(t: TestHooks, name: string, size: number): Promise<FaultMember> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdraid-fault-'));
  const sock = path.join(dir, 'nbdkit.sock');
  const trigger = path.join(dir, 'fail-writes');
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  const kit = startDaemon('nbdkit', [
    '-f', '-U', sock, '-P', path.join(dir, 'nbdkit.pid'), '--filter=error', 'memory', String(size),
    'error-pwrite-rate=100%', `error-pwrite-file=${trigger}`, 'error=EIO',
  ]);
  const fuse = startDaemon('nbdfuse', ['-P', path.join(dir, 'nbdfuse.pid'), path.join(mnt, name), '--unix', sock]);
  safeTeardown(t, `stop the fault member ${name}`, async () => {
    await runTool('fusermount3', ['-u', '-z', mnt], { allowFailure: true, timeoutMs: 10_000 });
    killGroup(fuse.pid, 'SIGKILL');
    killGroup(kit.pid, 'SIGKILL');
    await Promise.all([fuse.exited, kit.exited]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const file = path.join(mnt, name);
  await waitUntil(() => fs.existsSync(path.join(dir, 'nbdfuse.pid')) && fs.existsSync(file), 20_000,
    `nbdfuse to mount ${file} (nbdkit: ${kit.stderr()} nbdfuse: ${fuse.stderr()})`, 50);
  return {
    file,
    failWrites: () => fs.writeFileSync(trigger, ''),
    healWrites: () => fs.rmSync(trigger, { force: true }),
  };
}
