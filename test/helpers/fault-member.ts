// A member whose I/O fails on command, through the real file path: nbdkit's memory plugin behind
// its error filter, served on a unix socket and mounted as a plain file with nbdfuse. The
// controller opens, locks and pwrites that file like any other member; creating the trigger file
// makes every write to it fail with EIO (reads keep working), removing it heals it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { safeTeardown } from '../../harness/cleanup.js';
import { waitUntil } from './deadline.js';
import { runTool } from '../../harness/run-tool.js';
import { type TestHooks, spawnServer } from '../../harness/spawn-ready.js';

export interface FaultMember {
  /** The member file (inside the nbdfuse mount). */
  file: string;
  /** From now on every write to the member fails with EIO. */
  failWrites(): void;
  healWrites(): void;
}

/** Starts nbdkit + nbdfuse for a member of `size` bytes; everything is torn down with the test. */
export async function startFaultMember(t: TestHooks, name: string, size: number): Promise<FaultMember> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdraid-fault-'));
  const sock = path.join(dir, 'nbdkit.sock');
  const trigger = path.join(dir, 'fail-writes');
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  const kit = spawnServer('nbdkit', [
    '-f', '-U', sock, '-P', path.join(dir, 'nbdkit.pid'), '--filter=error', 'memory', String(size),
    'error-pwrite-rate=100%', `error-pwrite-file=${trigger}`, 'error=EIO',
  ]);
  const fuse = spawnServer('nbdfuse', ['-P', path.join(dir, 'nbdfuse.pid'), path.join(mnt, name), '--unix', sock]);
  safeTeardown(t, `stop the fault member ${name}`, async () => {
    await runTool('fusermount3', ['-u', '-z', mnt], { allowFailure: true, timeoutMs: 10_000 });
    await Promise.all([fuse.kill(), kit.kill()]);
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
