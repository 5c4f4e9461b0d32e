// The real Linux kernel as a test client: boots the distribution's kernel under QEMU with a small
// initramfs (scripts/guest-image.sh) and runs a shell script in it, so the kernel's own NBD client
// and md driver meet nbdraid. The guest reaches only the loopback exports the test names (QEMU
// user networking, restrict=on, one guestfwd per export); a 9p share carries the script in and
// its output, exit status and dmesg out.
//
// The kernel and initramfs are built on first use and cached under dist/guest-cache/<kernel>-<hash
// of the builder>; a build happens in a private directory that is renamed into place, so two test
// files building at once both end with one complete image. Missing QEMU or kernel is an error.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { runTool, killGroup } from '../../harness/run-tool.js';
import { repoRoot, type TestHooks } from '../../harness/server-process.js';

export interface GuestDisk {
  path: string;
  /** Writes go to a throw-away overlay; the file is left as it was. */
  snapshot?: boolean;
}

export interface GuestExport {
  /** The guest connects to 10.0.2.100:guestPort ... */
  guestPort: number;
  /** ... and reaches 127.0.0.1:hostPort on this machine. */
  hostPort: number;
}

export interface GuestOptions {
  /** Run by /bin/sh -e in the guest, from the share directory (also at /mnt/share). */
  script: string;
  /** Attached as virtio disks: /dev/vda, /dev/vdb, ... in this order. */
  disks?: GuestDisk[];
  exports?: GuestExport[];
  /** The whole run, boot to power-off; QEMU is killed when it expires. */
  timeoutMs: number;
  memMiB?: number;
  /** Kernel command-line additions. */
  append?: string;
  /** Called once QEMU is started, with the share directory (for a test that talks to the script). */
  onStart?: (share: string) => void;
}

export interface GuestResult {
  /** The script's exit status (-1 when the guest never recorded one). */
  code: number;
  /** Everything on the serial console. */
  console: string;
  /** The share directory: output.log, dmesg.log and whatever the script left there. */
  share: string;
  /** Boot to power-off, in milliseconds (for reports only, never asserted). */
  ms: number;
}

export interface GuestImage {
  kernelVersion: string;
  vmlinux: string;
  initramfs: string;
}

const BUILDER = path.join(repoRoot, 'scripts/guest-image.sh');
const CACHE = path.join(repoRoot, 'dist/guest-cache');
/** The host side of the guest's forwarded exports (QEMU user networking). */
export const GUEST_HOST_ADDR = '10.0.2.100';

function qemuBinary(): string {
  const dirs = ['/usr/bin', '/usr/local/bin', '/usr/sbin', ...(process.env.PATH ?? '').split(':')];
  for (const d of dirs) {
    const p = path.join(d, 'qemu-system-x86_64');
    if (fs.existsSync(p)) return p;
  }
  throw new Error('qemu-system-x86_64 not found: the kernel tests need the qemu-system-x86 package (scripts/ensure-test-tools.sh)');
}

/** NBDRAID_GUEST_KERNEL, else the newest /boot/vmlinuz-* that has a module tree. */
function kernelVersion(): string {
  const pinned = process.env.NBDRAID_GUEST_KERNEL;
  const versions = fs.existsSync('/boot') ? fs.readdirSync('/boot').filter((f) => f.startsWith('vmlinuz-')).map((f) => f.slice('vmlinuz-'.length)) : [];
  const usable = versions.filter((v) => fs.existsSync(path.join('/usr/lib/modules', v, 'modules.dep'))).sort();
  if (pinned) {
    if (!usable.includes(pinned)) throw new Error(`NBDRAID_GUEST_KERNEL=${pinned}: no /boot/vmlinuz-${pinned} with modules in /usr/lib/modules`);
    return pinned;
  }
  const v = usable.at(-1);
  if (!v) throw new Error('no kernel for the guest: /boot/vmlinuz-* with /usr/lib/modules/<version> is needed (the linux-image-amd64 package)');
  return v;
}

let building: Promise<GuestImage> | undefined;

/** The cached guest image, built first if needed. */
function guestImage(): Promise<GuestImage> {
  return (building ??= buildImage());
}

async function buildImage(): Promise<GuestImage> {
  const kver = kernelVersion();
  const hash = crypto.createHash('sha256').update(fs.readFileSync(BUILDER)).digest('hex').slice(0, 12);
  const final = path.join(CACHE, `${kver}-${hash}`);
  const image = (dir: string): GuestImage => ({ kernelVersion: kver, vmlinux: path.join(dir, 'vmlinux'), initramfs: path.join(dir, 'initramfs.gz') });
  if (fs.existsSync(path.join(final, 'initramfs.gz'))) return image(final);
  fs.mkdirSync(CACHE, { recursive: true });
  const work = fs.mkdtempSync(path.join(CACHE, '.build-'));
  try {
    const out = path.join(work, 'image');
    await runTool('bash', [BUILDER, kver, out], { timeoutMs: 300_000 });
    try {
      fs.renameSync(out, final);
    } catch (e) {
      // Another builder won the race; its image is complete (it was renamed whole).
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  return image(final);
}

let shareSeq = 0;

/** Boots the guest, runs `opts.script`, and resolves once QEMU has exited. */
export async function runGuest(t: TestHooks, opts: GuestOptions): Promise<GuestResult> {
  const qemu = qemuBinary();
  const img = await guestImage();
  const share = fs.mkdtempSync(path.join(CACHE, `.share-${process.pid}-${shareSeq++}-`));
  t.teardown(() => fs.rmSync(share, { recursive: true, force: true }));
  fs.writeFileSync(path.join(share, 'script.sh'), opts.script);

  const accel = process.env.NBDRAID_GUEST_ACCEL ?? 'tcg';
  const fwd = (opts.exports ?? []).map((e) =>
    `,guestfwd=tcp:${GUEST_HOST_ADDR}:${e.guestPort}-cmd:socat -lf /dev/null STDIO TCP:127.0.0.1:${e.hostPort}`).join('');
  const args = [
    '-accel', accel, '-machine', 'q35', '-cpu', accel === 'kvm' ? 'host' : 'max', '-smp', '1', '-m', String(opts.memMiB ?? 512),
    '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio', '-monitor', 'none',
    '-kernel', img.vmlinux, '-initrd', img.initramfs,
    '-append', `console=ttyS0 panic=-1 quiet ${opts.append ?? ''}`.trim(),
    '-netdev', `user,id=n0,restrict=on${fwd}`, '-device', 'virtio-net-pci,netdev=n0,romfile=',
    '-fsdev', `local,id=fs0,path=${share},security_model=none`, '-device', 'virtio-9p-pci,fsdev=fs0,mount_tag=share',
  ];
  for (const d of opts.disks ?? []) {
    args.push('-drive', `file=${d.path},format=raw,if=virtio,cache=writeback${d.snapshot ? ',snapshot=on' : ''}`);
  }

  const started = Date.now();
  const child = spawn(qemu, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let consoleText = '';
  const keep = (b: Buffer) => {
    if (consoleText.length < 8 << 20) consoleText += b.toString('utf8');
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (e) => {
      consoleText += `\n[qemu could not start: ${e.message}]\n`;
      resolve();
    });
  });
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      killGroup(child.pid, 'SIGKILL');
      await exited;
    }
  });
  opts.onStart?.(share);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid, 'SIGKILL');
  }, opts.timeoutMs);
  await exited;
  clearTimeout(timer);
  const ms = Date.now() - started;
  if (timedOut) consoleText += `\n[guest killed: no power-off within ${opts.timeoutMs} ms]\n`;
  const codeFile = path.join(share, 'exit-code');
  const code = fs.existsSync(codeFile) ? Number(fs.readFileSync(codeFile, 'utf8').trim()) : -1;
  return { code, console: consoleText, share, ms };
}

/** A file the guest left on the share ('' when it is absent). */
export function shareFile(result: GuestResult, name: string): string {
  const p = path.join(result.share, name);
  return fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : '';
}
