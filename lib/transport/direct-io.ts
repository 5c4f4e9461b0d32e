// O_DIRECT for a file's background I/O: a second descriptor on the same file, opened with O_DIRECT,
// used only for rebuild, check and repair, so that streaming a whole member neither copies through
// the page cache nor evicts the foreground's working set from it. Sound beside the buffered
// descriptor: Linux keeps the two coherent on one file (a direct read first writes back dirty
// cached pages of its range, a direct write writes them back and invalidates the cached range), and
// the stripe locks keep foreground writes off the stripes a background step is working on.
// O_DIRECT wants the buffer address, the offset and the length aligned (the logical block size;
// 4 KiB covers every common one): buffers come from an AlignedPool, and whatever is not aligned
// goes through the page cache instead.
import fs from 'node:fs';
import { NbdraidError } from '../errors.js';
import { ALIGN, isAligned } from './aligned-pool.js';

/** How background I/O reaches a file: its O_DIRECT descriptor, or the page cache and why. */
export type BackgroundIo =
  | { mode: 'direct'; fd: number }
  | { mode: 'buffered'; reason: 'disabled' | 'unsupported' }
  /** The kernel refused an aligned request; the descriptor stays open until the device closes (requests may still use it). */
  | { mode: 'buffered'; reason: 'refused'; fd: number };

export type DirectIoSetting = 'auto' | 'off';

/** Opens `path` with `flags`, returning the descriptor (fs.openSync's shape). */
export type DirectOpener = (path: string, flags: number) => number;

/** What NBDRAID_DIRECT_IO asks for: 'on' (the default) tries O_DIRECT, 'off' never does. */
export function directIoSetting(env = process.env.NBDRAID_DIRECT_IO): DirectIoSetting {
  if (env === undefined || env === '' || env === 'on') return 'auto';
  if (env === 'off') return 'off';
  throw new NbdraidError('EINVAL', 'NBDRAID_DIRECT_IO', `must be on or off, got ${env}`);
}

/**
 * The probe at open: a second descriptor with O_DIRECT, or buffered when it is switched off or the
 * file system refuses it (EINVAL at open; older tmpfs does).
 */
export function openBackgroundIo(path: string, readOnly: boolean, setting: DirectIoSetting = directIoSetting(),
  open: DirectOpener = fs.openSync): BackgroundIo {
  if (setting === 'off') return { mode: 'buffered', reason: 'disabled' };
  const { O_DIRECT, O_RDONLY, O_RDWR } = fs.constants;
  if (O_DIRECT === undefined) return { mode: 'buffered', reason: 'unsupported' };
  try {
    return { mode: 'direct', fd: open(path, (readOnly ? O_RDONLY : O_RDWR) | O_DIRECT) };
  } catch {
    return { mode: 'buffered', reason: 'unsupported' }; // the buffered descriptor works: use it
  }
}

const aligned = (buf: Buffer, offset: number): boolean => offset % ALIGN === 0 && isAligned(buf);

/**
 * One O_DIRECT pread into `into` at `offset`: the bytes read (fewer at the end of the file; 0 when
 * the request is not aligned, so the caller reads it buffered), or 'refused' on EINVAL.
 */
export function directRead(bg: { fd: number }, into: Buffer, offset: number): Promise<number | 'refused'> {
  if (!aligned(into, offset)) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    fs.read(bg.fd, into, 0, into.length, offset, (err, n) => settle(err, n, resolve, reject));
  });
}

/** One O_DIRECT pwrite of `data` at `offset`, as directRead. */
export function directWrite(bg: { fd: number }, data: Buffer, offset: number): Promise<number | 'refused'> {
  if (!aligned(data, offset)) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    fs.write(bg.fd, data, 0, data.length, offset, (err, n) => settle(err, n, resolve, reject));
  });
}

function settle(err: NodeJS.ErrnoException | null, n: number, resolve: (v: number | 'refused') => void, reject: (e: unknown) => void): void {
  if (!err) resolve(n);
  else if (err.code === 'EINVAL') resolve('refused');
  else reject(err);
}
