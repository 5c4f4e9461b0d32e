// Test wrappers for scripts/mount-nbdfuse.sh and scripts/umount-nbdfuse.sh: the kernel path on a
// machine without nbd.ko (nbdfuse file -> loop device -> file system). Teardown always unmounts.
import fs from 'node:fs';
import path from 'node:path';
import { safeTeardown } from '../../harness/cleanup.js';
import { runTool } from '../../harness/run-tool.js';
import { repoRoot, type TestHooks } from '../../harness/server-process.js';

export interface MountOptions {
  /** Make this file system first (e.g. 'ext4'). */
  mkfs?: string;
  /** Attach the loop device but do not mount it. */
  attachOnly?: boolean;
  readOnly?: boolean;
}

export interface NbdfuseMount {
  /** The loop device backed by the nbdfuse file. */
  loop: string;
  mountpoint: string;
  /** Unmounts and detaches everything; safe to call twice. */
  unmount(): Promise<void>;
}

const script = (name: string): string => path.join(repoRoot, 'scripts', name);

/** Why the mount path cannot run here, or null when it can. */
export function mountUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'mounting needs root (losetup, mount)';
  if (!fs.existsSync('/dev/fuse')) return '/dev/fuse is missing (no FUSE support in this kernel or container)';
  if (!fs.existsSync('/dev/loop-control')) return '/dev/loop-control is missing (no loop device support)';
  return null;
}

export async function mountNbdfuse(
  t: TestHooks, uri: string, mountpoint: string, opts: MountOptions = {},
): Promise<NbdfuseMount> {
  const args: string[] = [];
  if (opts.mkfs) args.push('--mkfs', opts.mkfs);
  if (opts.attachOnly) args.push('--attach-only');
  if (opts.readOnly) args.push('--read-only');
  let done = false;
  const unmount = async (): Promise<void> => {
    if (done) return;
    done = true;
    await runTool(script('umount-nbdfuse.sh'), [mountpoint], { timeoutMs: 60_000 });
  };
  safeTeardown(t, `unmount ${mountpoint}`, unmount);
  const r = await runTool(script('mount-nbdfuse.sh'), [...args, uri, mountpoint], { timeoutMs: 120_000 });
  return { loop: r.stdout.trim(), mountpoint, unmount };
}
