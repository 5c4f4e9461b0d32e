// Liveness by flock: a controller holds an exclusive flock on its own lock file for its whole
// life. It is dead exactly when someone else can take that lock; the kernel drops the lock when
// the process dies, however it dies. A late heartbeat proves nothing and is never used for this.
import { closeSync, openSync, unlinkSync } from 'node:fs';
import fsExt from 'fs-ext';
import { NbdraidError } from '../errors.js';

/** Opens (creating) `path` and takes its exclusive lock for the caller's lifetime; returns the fd. */
export function holdLock(path: string): number {
  const fd = openSync(path, 'a', 0o644);
  try {
    fsExt.flockSync(fd, 'exnb');
  } catch (err) {
    closeSync(fd);
    throw new NbdraidError('EBUSY', `lock ${path}`, `held by a live process (${(err as Error).message})`, { cause: err });
  }
  return fd;
}

/** Drops a lock taken with holdLock and removes its file. */
export function dropLock(fd: number, path: string): void {
  try { unlinkSync(path); } catch { /* already gone */ }
  closeSync(fd);
}

/**
 * True when the lock on `path` is held by a live process. A missing file means its owner ended.
 * Taking the lock briefly (and dropping it) is how we ask; it cannot harm a live owner.
 */
export function lockIsHeld(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
  try {
    fsExt.flockSync(fd, 'exnb');
    return false;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EWOULDBLOCK' || code === 'EAGAIN') return true;
    throw err;
  } finally {
    closeSync(fd);
  }
}
