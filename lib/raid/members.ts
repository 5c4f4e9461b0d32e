// Members on the host: regular files (created sparse on request) and block devices, opened with an
// flock on a separate descriptor so the lock mode (exclusive for one server, shared for a cluster of
// controllers) is independent of how the data is accessed. Closing the member drops the lock.
// Remote members: a member path that is an NBD URI (nbd://HOST:PORT/EXPORT, nbd+unix:///EXPORT?
// socket=PATH, nbds:// with TLS) is an export of a member server, opened through the transport's
// device-location door; no flock exists for it (docs/remote-members.md says what guards it instead).
import fs from 'node:fs';
import fsExt from 'fs-ext';
import { NbdraidError, asNbdraidError } from '../errors.js';
import type { BlockDevice } from '../transport/block-device.js';
import type { IoFence } from '../transport/io-fence.js';
import {
  DEFAULT_REMOTE_TIMEOUT_MS, canonicalLocation, isRemoteLocation, locationExists, openLocation,
} from '../transport/device-location.js';

export type LockMode = 'exclusive' | 'shared' | 'none';

export interface MemberHandle {
  path: string;
  device: BlockDevice;
  close(): Promise<void>;
}

let remoteTimeoutMs = DEFAULT_REMOTE_TIMEOUT_MS;

/** How long a remote member may leave a request (or its connection set-up) unanswered before it fails. */
export function setRemoteMemberTimeout(ms: number): void {
  if (!Number.isFinite(ms) || ms <= 0) throw new NbdraidError('EINVAL', 'member timeout', `must be a positive number of milliseconds, got ${ms}`);
  remoteTimeoutMs = ms;
}

/** How long a remote member may leave a request unanswered before it fails (ms). */
export function remoteMemberTimeout(): number {
  return remoteTimeoutMs;
}

export function isRemoteMember(p: string): boolean {
  return isRemoteLocation(p);
}

/** The form a member is recorded under: an absolute path, or the URI as given (checked). */
export function memberLocation(p: string): string {
  return canonicalLocation(p);
}

/** A local member exists as a file; a remote one is looked for only when it is opened. */
export function memberExists(p: string): boolean {
  return locationExists(p);
}

/** The member's data as a BlockDevice, without any lock (superblock reads and writes, probes). */
export async function openMemberDevice(p: string, opts: { readOnly?: boolean; fence?: IoFence } = {}): Promise<BlockDevice> {
  const device = await openLocation(p, { readOnly: opts.readOnly, timeoutMs: remoteTimeoutMs });
  return opts.fence ? opts.fence.wrap(device) : device;
}

export interface OpenMemberOptions {
  readOnly?: boolean;
  lock?: LockMode;
  /** Every data request passes this fence first (a controller's members: lib/transport/io-fence.ts). */
  fence?: IoFence;
}

/** Opens a member and takes its flock (default exclusive); EBUSY when another process holds it. */
export async function openMember(path: string, opts: OpenMemberOptions = {}): Promise<MemberHandle> {
  if (isRemoteLocation(path)) {
    const device = await openMemberDevice(path, opts);
    return { path, device, close: () => device.close() };
  }
  const lock = opts.lock ?? 'exclusive';
  const lockFd = lock === 'none' ? -1 : takeLock(path, lock);
  let device: BlockDevice;
  try {
    device = await openMemberDevice(path, opts);
  } catch (err) {
    if (lockFd >= 0) fs.closeSync(lockFd);
    throw err;
  }
  return {
    path, device,
    async close() {
      await device.close();
      if (lockFd >= 0) fs.closeSync(lockFd);
    },
  };
}

/** Opens members in order; on any failure closes those already open and rethrows. */
export async function openMembers(paths: string[], opts: OpenMemberOptions = {}): Promise<MemberHandle[]> {
  const out: MemberHandle[] = [];
  try {
    for (const p of paths) out.push(await openMember(p, opts));
    return out;
  } catch (err) {
    await closeMembers(out);
    throw err;
  }
}

export async function closeMembers(handles: MemberHandle[]): Promise<void> {
  await Promise.allSettled(handles.map((h) => h.close()));
}

/** True when some process holds a lock on the member (a server has it open). */
export function memberInUse(path: string): boolean {
  if (isRemoteLocation(path)) return false; // no lock to probe: see docs/remote-members.md
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch {
    return false;
  }
  try {
    fsExt.flockSync(fd, 'exnb');
    return false;
  } catch {
    return true;
  } finally {
    fs.closeSync(fd);
  }
}

/** Creates a sparse member file of `size` bytes when `path` does not exist; returns whether it did. */
export function createSparseMember(path: string, size: number): boolean {
  if (memberExists(path)) return false;
  try {
    const fd = fs.openSync(path, 'wx', 0o600);
    try {
      fs.ftruncateSync(fd, size);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  } catch (err) {
    throw asNbdraidError(err, `create ${path}`);
  }
}

function takeLock(path: string, mode: 'exclusive' | 'shared'): number {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    const e = asNbdraidError(err, `open ${path}`);
    if (e.code === 'ENOENT') {
      throw new NbdraidError('ENOENT', `open ${path}`, 'no such member; check the path (create passes --size to create member files)');
    }
    throw e;
  }
  try {
    fsExt.flockSync(fd, mode === 'exclusive' ? 'exnb' : 'shnb');
    return fd;
  } catch (err) {
    fs.closeSync(fd);
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EWOULDBLOCK' || code === 'EAGAIN') {
      throw new NbdraidError('EBUSY', `open ${path}`, 'member is in use by another nbdraid process (stop the server first)');
    }
    throw asNbdraidError(err, `lock ${path}`);
  }
}
