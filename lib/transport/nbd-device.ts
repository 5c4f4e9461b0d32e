// NbdDevice: a BlockDevice over an export of another NBD server (nbdraid serve --file, nbdkit,
// qemu-nbd), reached with nbdraid's own client. Size, block sizes and capabilities come from the
// server's handshake; requests larger than the server takes are split.
//
// Failure policy: one connection for the device's life, never reconnected. A request that gets no
// reply within the timeout, or a connection that drops, moves the device to `failed`: the socket is
// destroyed, every request in flight and every later one fails with EIO (ETIMEDOUT for the one
// that timed out), so whoever uses it (a RAID volume) fails the member at once instead of hanging.
// A write that failed this way was not acknowledged; it may or may not have reached the server.
import type tls from 'node:tls';
import { NbdraidError, asNbdraidError } from '../errors.js';
import {
  type BlockDevice, type BlockSizes, type Capabilities, type Extent, type WriteOptions, type ZeroOptions,
} from './block-device.js';
import { NbdClient } from './client.js';
import { OptionError } from './client-handshake.js';
import {
  TFLAG_CAN_MULTI_CONN, TFLAG_READ_ONLY, TFLAG_ROTATIONAL, TFLAG_SEND_CACHE, TFLAG_SEND_FAST_ZERO, TFLAG_SEND_FLUSH,
  TFLAG_SEND_FUA, TFLAG_SEND_TRIM, TFLAG_SEND_WRITE_ZEROES, REP_ERR_TLS_REQD, REP_ERR_UNKNOWN,
} from './constants.js';
import { parseNbdUri } from './nbd-uri.js';
import { loadClientTls } from './tls.js';

/** A request (or the connection and handshake) with no answer for this long fails the device. */
export const DEFAULT_NBD_DEVICE_TIMEOUT_MS = 30_000;
/** Largest READ/WRITE sent when the server names no maximum (the limit most servers keep). */
const DEFAULT_MAX_PAYLOAD = 32 << 20;
/** Largest TRIM/WRITE_ZEROES length in one request (fits the 32-bit length of compact headers). */
const MAX_EFFECT_LENGTH = 1 << 30;
const ZERO_CHUNK = Buffer.alloc(1 << 20);

export interface NbdDeviceOptions {
  readOnly?: boolean;
  /** Per-request and handshake timeout (default DEFAULT_NBD_DEVICE_TIMEOUT_MS). */
  timeoutMs?: number;
}

type DeviceState = { kind: 'open' } | { kind: 'failed'; reason: NbdraidError } | { kind: 'closed' };

export class NbdDevice implements BlockDevice {
  readonly size: number;
  readonly blockSizes: BlockSizes;
  readonly capabilities: Capabilities;
  private state: DeviceState = { kind: 'open' };
  private readonly maxPayload: number;

  private constructor(readonly uri: string, private readonly client: NbdClient, private readonly timeoutMs: number, readOnly: boolean) {
    const f = client.transmissionFlags;
    const has = (bit: number): boolean => (f & bit) !== 0;
    this.size = client.size;
    const bs = client.blockSizes;
    this.maxPayload = Math.min(bs?.maximum ?? DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_PAYLOAD);
    this.blockSizes = { minimum: bs?.minimum ?? 1, preferred: Math.max(bs?.preferred ?? 4096, 512), maximum: this.maxPayload };
    this.capabilities = {
      readOnly: readOnly || has(TFLAG_READ_ONLY),
      // Without FLUSH or FUA the server promises nothing more than its replies; both are emulated.
      flush: true, fua: true, trim: has(TFLAG_SEND_TRIM), zero: true, fastZero: has(TFLAG_SEND_FAST_ZERO),
      cache: has(TFLAG_SEND_CACHE), multiConn: has(TFLAG_CAN_MULTI_CONN), blockStatus: client.contextId !== 0,
      rotational: has(TFLAG_ROTATIONAL),
    };
  }

  /** Connects to `uri` (nbd://, nbd+unix://, nbds://, nbds+unix://) and enters transmission. */
  static async open(uri: string, opts: NbdDeviceOptions = {}): Promise<NbdDevice> {
    const target = parseNbdUri(uri);
    const timeoutMs = opts.timeoutMs ?? DEFAULT_NBD_DEVICE_TIMEOUT_MS;
    let tlsOpts: tls.ConnectionOptions | undefined;
    if (target.tls) tlsOpts = loadClientTls(target.tls);
    let client: NbdClient;
    try {
      client = await NbdClient.connect({ ...target.address, exportName: target.exportName, tls: tlsOpts, timeoutMs });
    } catch (err) {
      throw openError(uri, err);
    }
    const dev = new NbdDevice(uri, client, timeoutMs, !!opts.readOnly);
    if (!opts.readOnly && dev.capabilities.readOnly) {
      client.close();
      throw new NbdraidError('EPERM', `open ${uri}`, 'the server exports it read-only');
    }
    return dev;
  }

  /** Why the device failed, or null while it works. */
  get failure(): NbdraidError | null {
    return this.state.kind === 'failed' ? this.state.reason : null;
  }

  async read(offset: number, into: Buffer): Promise<void> {
    for (let done = 0; done < into.length; done += this.maxPayload) {
      const n = Math.min(this.maxPayload, into.length - done);
      const part = into.subarray(done, done + n);
      await this.call('read', offset + done, () => this.client.read(offset + done, n, { into: part }));
    }
  }

  async write(offset: number, data: Buffer, opts: WriteOptions = {}): Promise<void> {
    const fua = !!opts.fua && this.sendsFua();
    for (let done = 0; done < data.length; done += this.maxPayload) {
      const part = data.subarray(done, done + this.maxPayload);
      await this.call('write', offset + done, () => this.client.write(offset + done, part, { fua }));
    }
    if (opts.fua && !fua) await this.flush();
  }

  async flush(): Promise<void> {
    if ((this.client.transmissionFlags & TFLAG_SEND_FLUSH) === 0) return this.check();
    await this.call('flush', 0, () => this.client.flush());
  }

  async trim(offset: number, length: number, opts: WriteOptions = {}): Promise<void> {
    if (this.capabilities.trim) {
      await this.inPieces('trim', offset, length, (at, n) => this.client.trim(at, n));
    }
    if (opts.fua) await this.flush();
  }

  async writeZeroes(offset: number, length: number, opts: ZeroOptions = {}): Promise<void> {
    if ((this.client.transmissionFlags & TFLAG_SEND_WRITE_ZEROES) === 0) {
      if (opts.fastZero) throw new NbdraidError('ENOTSUP', `zero ${this.uri}`, 'the server cannot zero fast');
      for (let done = 0; done < length; done += ZERO_CHUNK.length) {
        await this.write(offset + done, ZERO_CHUNK.subarray(0, Math.min(ZERO_CHUNK.length, length - done)));
      }
    } else {
      const flags = { noHole: opts.noHole, fastZero: opts.fastZero };
      await this.inPieces('write zeroes', offset, length, (at, n) => this.client.writeZeroes(at, n, flags));
    }
    if (opts.fua) await this.flush();
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    if (!this.capabilities.blockStatus) return [{ length, flags: 0 }];
    const n = Math.min(length, MAX_EFFECT_LENGTH);
    const extents = await this.call('block status', offset, () => this.client.blockStatus(offset, n));
    const out = extents.map((e) => ({ length: Math.min(e.length, n), flags: e.flags }));
    return out.length > 0 ? out : [{ length, flags: 0 }];
  }

  async cache(offset: number, length: number): Promise<void> {
    if (this.capabilities.cache) await this.call('cache', offset, () => this.client.cache(offset, Math.min(length, MAX_EFFECT_LENGTH)));
  }

  /** Waits for requests in flight (each bounded by the timeout), then disconnects. */
  async close(): Promise<void> {
    const was = this.state.kind;
    if (was === 'closed') return;
    this.state = { kind: 'closed' };
    if (was === 'failed') return;
    const soft = this.client.disconnect().catch(() => undefined);
    const timer = setTimeout(() => this.client.close(), this.timeoutMs);
    await soft;
    clearTimeout(timer);
  }

  private sendsFua(): boolean {
    return (this.client.transmissionFlags & TFLAG_SEND_FUA) !== 0;
  }

  private async inPieces(op: string, offset: number, length: number, fn: (at: number, n: number) => Promise<void>): Promise<void> {
    for (let done = 0; done < length; done += MAX_EFFECT_LENGTH) {
      const at = offset + done;
      await this.call(op, at, () => fn(at, Math.min(MAX_EFFECT_LENGTH, length - done)));
    }
  }

  private check(): void {
    if (this.state.kind === 'failed') throw this.state.reason;
    if (this.state.kind === 'closed') throw new NbdraidError('ESHUTDOWN', this.uri, 'device is closed');
  }

  /**
   * Runs one request with the timeout. A server's error reply (EINVAL, ENOSPC...) is that request's
   * failure only; a lost connection or a timeout fails the device.
   */
  private async call<T>(op: string, offset: number, fn: () => Promise<T>): Promise<T> {
    this.check();
    const ctx = `${op} ${this.uri} at ${offset}`;
    let timer: NodeJS.Timeout | undefined;
    const expiry = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NbdraidError('ETIMEDOUT', ctx, `no reply within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      return await Promise.race([fn(), expiry]);
    } catch (err) {
      throw this.onError(err, ctx);
    } finally {
      clearTimeout(timer);
    }
  }

  private onError(err: unknown, ctx: string): NbdraidError {
    const e = asNbdraidError(err, ctx);
    const lost = e.code === 'ETIMEDOUT' || e.context === 'nbd client' || /^connect /.test(e.context);
    if (!lost) return e;
    if (this.state.kind === 'open') {
      this.state = { kind: 'failed', reason: new NbdraidError('EIO', this.uri, `connection lost (${e.message}); the member is not reconnected`) };
      this.client.close();
    }
    return e.code === 'ETIMEDOUT' ? e : new NbdraidError('EIO', ctx, e.message);
  }
}

/** One line naming the URI; an unknown export is ENOENT, a server that wants TLS says so. */
function openError(uri: string, err: unknown): NbdraidError {
  const e = asNbdraidError(err, `open ${uri}`);
  if (err instanceof OptionError && err.replyType === REP_ERR_UNKNOWN) {
    return new NbdraidError('ENOENT', `open ${uri}`, 'the server has no such export', { cause: err });
  }
  if (err instanceof OptionError && err.replyType === REP_ERR_TLS_REQD) {
    return new NbdraidError('EPERM', `open ${uri}`, 'the server requires TLS; use an nbds:// URI with credentials', { cause: err });
  }
  return e.context === `open ${uri}` ? e : new NbdraidError(e.code, `open ${uri}`, e.message, { cause: err });
}
