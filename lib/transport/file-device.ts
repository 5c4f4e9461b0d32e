// FileDevice: a BlockDevice over a regular file or a block device.
// Size by seeking to the end (works for both); block status from SEEK_DATA/SEEK_HOLE on
// regular files; optional exclusive flock so two processes never open one member for writing.
// Background I/O (rebuild, check, repair) may bypass the page cache through a second descriptor
// opened with O_DIRECT (see direct-io.ts); foreground I/O always goes through the page cache.
import fs from 'node:fs';
import fsExt from 'fs-ext';
import { NbdraidError, asNbdraidError } from '../errors.js';
import {
  type BlockDevice, type BlockSizes, type Capabilities, type Extent, type WriteOptions, type ZeroOptions,
  DEFAULT_CAPABILITIES, STATE_HOLE, STATE_ZERO,
} from './block-device.js';
import { type BackgroundIo, type DirectIoSetting, type DirectOpener, directRead, directWrite, openBackgroundIo } from './direct-io.js';

const SEEK_END = 2;
const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ZERO_CHUNK = Buffer.alloc(1 << 20);
/** A pwrite that writes nothing is retried this many times in a row, then the write fails. */
const NO_PROGRESS_TRIES = 3;

export interface FileDeviceOptions {
  readOnly?: boolean;
  /** Take an exclusive, non-blocking flock; fails with EBUSY when another process holds it. */
  exclusive?: boolean;
  /** Smallest I/O unit advertised to clients (a power of two, default 1: any alignment). */
  minimumBlockSize?: number;
  /** Background I/O with O_DIRECT where the file system takes it ('auto'), or never ('off'); default from NBDRAID_DIRECT_IO. */
  directIo?: DirectIoSetting;
  /** Opens the O_DIRECT descriptor (fault injection: a file system that refuses it). */
  openDirect?: DirectOpener;
}

/**
 * Requests up to this size are one synchronous pread/pwrite on the event loop: from the page cache
 * that is far cheaper than a round trip through libuv's thread pool (4 KiB random I/O served about
 * 1.5x faster); larger requests go to the thread pool, where several overlap.
 */
const SYNC_IO_MAX = 64 * 1024;

function readAt(fd: number, into: Buffer, pos: number, offset: number, length: number): Promise<number> {
  if (length <= SYNC_IO_MAX) {
    try {
      return Promise.resolve(fs.readSync(fd, into, pos, length, offset));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return new Promise((resolve, reject) => {
    fs.read(fd, into, pos, length, offset, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function writeAt(fd: number, data: Buffer, pos: number, offset: number, length: number): Promise<number> {
  if (length <= SYNC_IO_MAX) {
    try {
      return Promise.resolve(fs.writeSync(fd, data, pos, length, offset));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return new Promise((resolve, reject) => {
    fs.write(fd, data, pos, length, offset, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

export class FileDevice implements BlockDevice {
  readonly blockSizes: BlockSizes;
  readonly capabilities: Capabilities;
  private closed = false;

  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly size: number,
    readonly isBlockDevice: boolean,
    readOnly: boolean,
    minimum: number,
    private background: BackgroundIo,
  ) {
    this.blockSizes = { minimum, preferred: Math.max(4096, minimum), maximum: 32 << 20 };
    this.capabilities = {
      ...DEFAULT_CAPABILITIES,
      readOnly,
      blockStatus: !isBlockDevice,
      rotational: false,
    };
  }

  static async open(path: string, opts: FileDeviceOptions = {}): Promise<FileDevice> {
    const ctx = `open ${path}`;
    let fd: number;
    try {
      fd = fs.openSync(path, opts.readOnly ? 'r' : 'r+');
    } catch (err) {
      throw asNbdraidError(err, ctx);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile() && !st.isBlockDevice()) throw new NbdraidError('EINVAL', ctx, 'not a regular file or block device');
      if (opts.exclusive) lockExclusive(fd, ctx);
      const size = fsExt.seekSync(fd, 0, SEEK_END);
      const minimum = checkMinimum(opts.minimumBlockSize ?? 1, ctx);
      const background = openBackgroundIo(path, !!opts.readOnly, opts.directIo, opts.openDirect);
      return new FileDevice(path, fd, size, st.isBlockDevice(), !!opts.readOnly, minimum, background);
    } catch (err) {
      fs.closeSync(fd);
      throw asNbdraidError(err, ctx);
    }
  }

  async read(offset: number, into: Buffer): Promise<void> {
    let done = 0;
    while (done < into.length) {
      const n = await this.io(readAt(this.fd, into, done, offset + done, into.length - done), 'read', offset);
      if (n === 0) {
        into.fill(0, done); // past the end of a file that shrank: read as zeroes
        return;
      }
      done += n;
    }
  }

  /** A short write is retried from where it stopped; a write the kernel refuses fails, never counted as done. */
  async write(offset: number, data: Buffer, opts: WriteOptions = {}): Promise<void> {
    let done = 0;
    let stalled = 0;
    while (done < data.length) {
      const n = await this.io(writeAt(this.fd, data, done, offset + done, data.length - done), 'write', offset);
      stalled = n > 0 ? 0 : stalled + 1;
      if (stalled >= NO_PROGRESS_TRIES) {
        throw new NbdraidError('EIO', `write ${this.path} at ${offset}`, `the kernel wrote nothing at byte ${done} of ${data.length}, ${stalled} times; the device may be failing`);
      }
      done += n;
    }
    if (opts.fua) await this.flush();
  }

  /** How background I/O reaches the file: 'direct', or 'buffered' with the reason. */
  get backgroundMode(): string {
    return this.background.mode === 'direct' ? 'direct' : `buffered (${this.background.reason})`;
  }

  /**
   * Background reads bypass the page cache where they can: an aligned request goes to the O_DIRECT
   * descriptor, the rest (past a short read at the end, an unaligned request) through read().
   */
  async readBackground(offset: number, into: Buffer): Promise<void> {
    const n = this.background.mode === 'direct' ? await this.io(directRead(this.background, into, offset), 'read', offset) : 0;
    if (n === 'refused') this.dropDirect();
    const done = typeof n === 'number' ? n : 0;
    if (done < into.length) await this.read(offset + done, into.subarray(done));
  }

  async writeBackground(offset: number, data: Buffer, opts: WriteOptions = {}): Promise<void> {
    const n = this.background.mode === 'direct' ? await this.io(directWrite(this.background, data, offset), 'write', offset) : 0;
    if (n === 'refused') this.dropDirect();
    const done = typeof n === 'number' ? n : 0;
    if (done < data.length) await this.write(offset + done, data.subarray(done));
    if (opts.fua) await this.flush();
  }

  /** The kernel refused an aligned O_DIRECT request (EINVAL): background I/O is buffered from now on. */
  private dropDirect(): void {
    if (this.background.mode === 'direct') this.background = { mode: 'buffered', reason: 'refused', fd: this.background.fd };
  }

  /**
   * fdatasync works on the file, not the descriptor: it also makes durable what went through the
   * O_DIRECT descriptor (whose data may still sit in the disk's volatile cache).
   */
  async flush(): Promise<void> {
    await this.io(fdatasync(this.fd), 'flush', 0);
  }

  /** Discard is a hint: contents are left unchanged (NBD allows any content after TRIM). */
  async trim(_offset: number, _length: number, opts: WriteOptions = {}): Promise<void> {
    if (opts.fua) await this.flush();
  }

  async writeZeroes(offset: number, length: number, opts: ZeroOptions = {}): Promise<void> {
    if (opts.fastZero) throw new NbdraidError('ENOTSUP', `zero ${this.path}`, 'fast zeroing is not supported');
    for (let done = 0; done < length; done += ZERO_CHUNK.length) {
      const n = Math.min(ZERO_CHUNK.length, length - done);
      await this.write(offset + done, ZERO_CHUNK.subarray(0, n));
    }
    if (opts.fua) await this.flush();
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    if (this.isBlockDevice) return [{ length, flags: 0 }];
    try {
      return sparseExtents(this.fd, offset, length, this.size);
    } catch {
      return [{ length, flags: 0 }]; // file system without SEEK_DATA: everything allocated is safe
    }
  }

  async cache(): Promise<void> {
    // The page cache does read-ahead on its own; nothing to do.
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if ('fd' in this.background) fs.closeSync(this.background.fd);
    fs.closeSync(this.fd); // also drops the flock
  }

  private async io<T>(p: Promise<T>, op: string, offset: number): Promise<T> {
    try {
      return await p;
    } catch (err) {
      throw asNbdraidError(err, `${op} ${this.path} at ${offset}`);
    }
  }
}

function checkMinimum(n: number, ctx: string): number {
  if (!Number.isInteger(n) || n < 1 || n > 65536 || (n & (n - 1)) !== 0) {
    throw new NbdraidError('EINVAL', ctx, `minimum block size must be a power of two from 1 to 64K, got ${n}`);
  }
  return n;
}

function lockExclusive(fd: number, ctx: string): void {
  try {
    fsExt.flockSync(fd, 'exnb');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EWOULDBLOCK' || code === 'EAGAIN') {
      throw new NbdraidError('EBUSY', ctx, 'in use by another nbdraid process (stop it first, or pick another device)');
    }
    throw err;
  }
}

/** Extents of [offset, offset+length) from SEEK_DATA / SEEK_HOLE; holes read as zeroes. */
function sparseExtents(fd: number, offset: number, length: number, size: number): Extent[] {
  const end = Math.min(offset + length, size);
  const out: Extent[] = [];
  let pos = offset;
  while (pos < end) {
    const data = seekOr(fd, pos, SEEK_DATA, end);
    if (data > pos) {
      out.push({ length: Math.min(data, end) - pos, flags: STATE_HOLE | STATE_ZERO });
      pos = Math.min(data, end);
      continue;
    }
    const hole = seekOr(fd, pos, SEEK_HOLE, end);
    out.push({ length: Math.min(hole, end) - pos, flags: 0 });
    pos = Math.min(hole, end);
  }
  return out.length > 0 ? out : [{ length, flags: 0 }];
}

/** lseek with SEEK_DATA/SEEK_HOLE; ENXIO (no data after pos) maps to `fallback`. */
function seekOr(fd: number, pos: number, whence: number, fallback: number): number {
  try {
    return fsExt.seekSync(fd, pos, whence);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENXIO') return fallback;
    throw err;
  }
}
