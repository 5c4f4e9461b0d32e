// The btrfs reference of the rebuild benchmark: btrfs raid5 (data and metadata) on five loop
// devices over files of the members' size, filled with the same amount of data, then a member
// lost (unmounted, detached, mounted degraded) and `btrfs replace` onto a sixth loop device, then
// `btrfs scrub`. Skipped, with the reason, where the kernel or the tools cannot do it.
import fs from 'node:fs';
import path from 'node:path';
import { runTool } from '../../harness/run-tool.js';

export interface BtrfsResult {
  skipped?: string;
  replaceSeconds?: number;
  scrubSeconds?: number;
  /** Bytes the replace wrote to the new device (allocated chunks only). */
  replacedBytes?: number;
  dataBytes?: number;
  /** How the replace ran. */
  mode?: string;
}

/** Why btrfs cannot run here, or null. */
export async function btrfsUnavailable(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'needs root (losetup, mount)';
  const has = () => fs.readFileSync('/proc/filesystems', 'utf8').includes('btrfs');
  if (!has()) await runTool('modprobe', ['btrfs'], { allowFailure: true }).catch(() => undefined);
  if (!has()) return 'this kernel has no btrfs (not in /proc/filesystems, modprobe btrfs failed)';
  const tools = await runTool('mkfs.btrfs', ['--version'], { allowFailure: true }).catch(() => undefined);
  if (tools?.code !== 0) return 'mkfs.btrfs is not installed (Debian: btrfs-progs)';
  if (!fs.existsSync('/dev/loop-control')) return 'no loop device support';
  return null;
}

const sh = (cmd: string, args: string[], timeoutMs = 600_000) => runTool(cmd, args, { timeoutMs });

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/**
 * Runs replace and scrub; `fillBytes` of file data are written first. Member 3 is lost: detached,
 * the file system mounted degraded, and replaced by devid. Where the degraded file system refuses
 * (ENOSPC: it cannot set a block group read-only without allocating), or BENCH_BTRFS_REPLACE=read
 * asks for it, the whole run is repeated on a fresh file system with the member attached and
 * `replace -r`, which reads the other devices wherever it can. Cleans up after itself.
 */
export async function btrfsReference(dir: string, memberBytes: number, fillBytes: number): Promise<BtrfsResult> {
  const why = await btrfsUnavailable();
  if (why) return { skipped: why };
  try {
    if (process.env.BENCH_BTRFS_REPLACE === 'read') return await runOnce(dir, memberBytes, fillBytes, 'read');
    try {
      return await runOnce(dir, memberBytes, fillBytes, 'degraded');
    } catch (err) {
      if (!/No space left/.test((err as Error).message)) throw err;
      const r = await runOnce(dir, memberBytes, fillBytes, 'read');
      return { ...r, mode: `${r.mode} (the degraded replace failed with ENOSPC)` };
    }
  } catch (err) {
    return { skipped: `btrfs run failed: ${(err as Error).message.split('\n').slice(0, 6).join(' | ')}` };
  }
}

async function runOnce(dir: string, memberBytes: number, fillBytes: number, how: 'degraded' | 'read'): Promise<BtrfsResult> {
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt, { recursive: true });
  const loops: string[] = [];
  let mounted = false;
  try {
    for (let i = 0; i < 6; i++) {
      const f = path.join(dir, `b${i}`);
      fs.writeFileSync(f, '');
      fs.truncateSync(f, memberBytes);
      loops.push((await sh('losetup', ['-f', '--show', f])).stdout.trim());
    }
    const members = loops.slice(0, 5);
    const spare = loops[5];
    await sh('mkfs.btrfs', ['-f', '-q', '-d', 'raid5', '-m', 'raid5', ...members]);
    const devices = (list: string[]) => list.map((d) => `device=${d}`).join(',');
    await sh('mount', ['-o', devices(members), members[0], mnt]);
    mounted = true;
    const files = Math.max(1, Math.round(fillBytes / 2 ** 30));
    await sh('fio', ['--name=fill', `--directory=${mnt}`, '--rw=write', '--bs=2m', `--size=${Math.floor(fillBytes / files)}`,
      `--numjobs=${files}`, '--ioengine=psync', '--end_fsync=1', '--thread']);
    await sh('sync', ['-f', mnt]);
    let replaceSeconds: number;
    let mode: string;
    if (how === 'degraded') {
      await sh('umount', [mnt]);
      mounted = false;
      await sh('losetup', ['-d', members[2]]);
      const survivors = members.filter((_, i) => i !== 2);
      await sh('mount', ['-o', `degraded,${devices(survivors)}`, survivors[0], mnt]);
      mounted = true;
      mode = 'degraded mount, member detached, replace by devid';
      replaceSeconds = await timed(() => sh('btrfs', ['replace', 'start', '-B', '-f', '3', spare, mnt]));
    } else {
      mode = 'replace -r: member attached, read from the other devices where possible';
      replaceSeconds = await timed(() => sh('btrfs', ['replace', 'start', '-r', '-B', '-f', members[2], spare, mnt]));
    }
    const scrubSeconds = await timed(() => sh('btrfs', ['scrub', 'start', '-B', mnt]));
    const usage = (await sh('btrfs', ['device', 'usage', '-b', mnt])).stdout;
    return { replaceSeconds, scrubSeconds, replacedBytes: deviceUsed(usage, spare), dataBytes: fillBytes, mode };
  } finally {
    if (mounted) await runTool('umount', [mnt], { allowFailure: true });
    for (const l of loops) await runTool('losetup', ['-d', l], { allowFailure: true });
    for (let i = 0; i < 6; i++) fs.rmSync(path.join(dir, `b${i}`), { force: true });
  }
}

/** Bytes allocated on `device` from `btrfs device usage -b` output (sum of its chunk lines). */
function deviceUsed(usage: string, device: string): number | undefined {
  const block = usage.split(/\n(?=\/dev\/)/).find((b) => b.startsWith(`${device},`));
  if (!block) return undefined;
  return block.split('\n').filter((l) => /^\s+(Data|Metadata|System),/.test(l))
    .reduce((n, l) => n + Number(/(\d+)\s*$/.exec(l)?.[1] ?? 0), 0);
}
