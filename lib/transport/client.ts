// NbdClient: the transmission phase of an NBD connection, on the same codec as the server.
// Requests are pipelined; each gets a fresh cookie and replies may arrive in any order.
//
//   const c = await NbdClient.connect({ host: '127.0.0.1', port, exportName: 'disk' });
//   await c.write(0, data, { fua: true });
//   const back = await c.read(0, data.length);
//   const extents = await c.blockStatus(0, c.size);
//   await c.disconnect();
//
// High-level methods throw NbdraidError with the code of the server's errno (errno.ts);
// request() returns the raw reply instead, for tests that send invalid requests on purpose.
import type tls from 'node:tls';
import type { BlockSizes } from './block-device.js';
import {
  type NbdRequest, type ReplyKind, type WireExtent, decodeBlockStatusPayload, decodeErrorPayload, encodeRequest,
} from './codec-transmission.js';
import { readU64 } from './codec-util.js';
import {
  CMD_BLOCK_STATUS, CMD_CACHE, CMD_DISC, CMD_FLAG_DF, CMD_FLAG_FAST_ZERO, CMD_FLAG_FUA, CMD_FLAG_NO_HOLE,
  CMD_FLAG_REQ_ONE, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES, REPLY_FLAG_DONE,
  REPLY_TYPE_BLOCK_STATUS, REPLY_TYPE_BLOCK_STATUS_EXT, REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET,
  REPLY_TYPE_NONE, REPLY_TYPE_OFFSET_DATA, REPLY_TYPE_OFFSET_HOLE,
} from './constants.js';
import { fromNbdErrno } from './errno.js';
import type { ClientFrame } from './frame-reader.js';
import { type Address, ClientHandshake, type FrameChannel, OptionError } from './client-handshake.js';
import { NbdraidError } from '../errors.js';

export interface ExportInfo {
  size: number;
  transmissionFlags: number;
  blockSizes?: BlockSizes;
  name?: string;
  description?: string;
}

export type ConnectOptions = Address & {
  exportName?: string;
  /** Negotiate structured replies (default true). */
  structured?: boolean;
  /** Negotiate extended headers (default true; falls back when the server refuses). */
  extended?: boolean;
  /** Contexts to select when structured (default ['base:allocation']). */
  metaContexts?: string[];
  /** Enter transmission with EXPORT_NAME instead of GO. */
  useExportName?: boolean;
  /** Upgrade with STARTTLS before any other option (credentials from loadClientTls in tls.ts). */
  tls?: tls.ConnectionOptions;
  /** Drop the connection with ETIMEDOUT when connecting or the handshake is silent this long. */
  timeoutMs?: number;
};

export interface RawRequest {
  type: number;
  flags?: number;
  offset?: number;
  length?: number;
  payload?: Buffer;
  /** READ only: the buffer (of `length` bytes) the data is placed in, instead of one of its own. */
  into?: Buffer;
}

export interface RawReply {
  /** 0 on success, else the NBD error number. */
  errno: number;
  message: string;
  /** READ data (zero-filled where the server sent holes). */
  data: Buffer | null;
  extents: { contextId: number; extents: WireExtent[] }[];
  /** Styles of the messages that made the reply, in arrival order. */
  kinds: ReplyKind[];
}

interface Pending {
  req: NbdRequest;
  reply: RawReply;
  /** READ into a caller's buffer: data bytes placed so far (the reply must cover the request). */
  placed?: number;
  resolve: (r: RawReply) => void;
  reject: (e: Error) => void;
}

export class NbdClient {
  readonly size: number;
  readonly transmissionFlags: number;
  readonly blockSizes: BlockSizes | undefined;
  readonly name: string | undefined;
  readonly description: string | undefined;
  readonly structured: boolean;
  readonly extended: boolean;
  /** Id of base:allocation, 0 when not selected. */
  readonly contextId: number;
  private readonly inflight = new Map<bigint, Pending>();
  private cookie = 0n;
  private failure: Error | null = null;
  private readonly closed: Promise<void>;

  constructor(private readonly channel: FrameChannel, info: ExportInfo, mode: { structured: boolean; extended: boolean; contextId: number }) {
    this.size = info.size;
    this.blockSizes = info.blockSizes;
    this.name = info.name;
    this.description = info.description;
    this.transmissionFlags = info.transmissionFlags;
    this.structured = mode.structured;
    this.extended = mode.extended;
    this.contextId = mode.contextId;
    channel.simpleDataLength = (cookie, error) => {
      const p = this.inflight.get(cookie);
      return p && error === 0 && p.req.type === CMD_READ ? p.req.length : 0;
    };
    channel.readTargetOf = (cookie) => {
      const p = this.inflight.get(cookie);
      return p?.placed !== undefined && p.reply.data ? { buf: p.reply.data, offset: p.req.offset } : null;
    };
    channel.onFrame = (f) => this.onFrame(f);
    channel.onError = (err) => this.fail(err);
    this.closed = new Promise((resolve) => channel.socket.once('close', () => resolve()));
  }

  /** Connects and negotiates (extended headers, else structured replies; base:allocation; GO). */
  static async connect(opts: ConnectOptions): Promise<NbdClient> {
    const hs = await ClientHandshake.open(opts, { tls: opts.tls, timeoutMs: opts.timeoutMs });
    const name = opts.exportName ?? '';
    try {
      if (opts.extended !== false && opts.structured !== false) await hs.extendedHeaders().catch(ignoreOptionError);
      if (opts.structured !== false && !hs.structured) await hs.structuredReply().catch(ignoreOptionError);
      const contexts = opts.metaContexts ?? ['base:allocation'];
      if (hs.structured && contexts.length > 0) await hs.setMetaContext(name, contexts);
      return await (opts.useExportName ? hs.exportName(name) : hs.go(name));
    } catch (err) {
      hs.close();
      throw err;
    }
  }

  /** Sends any request and resolves with the raw reply (errors included). */
  request(r: RawRequest): Promise<RawReply> {
    if (this.failure) return Promise.reject(this.failure);
    const req: NbdRequest = {
      type: r.type, flags: r.flags ?? 0, cookie: ++this.cookie, offset: r.offset ?? 0, length: r.length ?? r.payload?.length ?? 0,
    };
    const into = req.type === CMD_READ && r.into?.length === req.length ? r.into : undefined;
    const reply: RawReply = { errno: 0, message: '', data: into ?? null, extents: [], kinds: [] };
    const placed = into ? 0 : undefined;
    const promise = new Promise<RawReply>((resolve, reject) => this.inflight.set(req.cookie, { req, reply, placed, resolve, reject }));
    const socket = this.channel.socket;
    socket.cork();
    socket.write(encodeRequest(req, this.extended));
    if (r.payload) socket.write(r.payload);
    socket.uncork();
    return promise;
  }

  /** READ: the data in a new buffer, or in `into` (of `length` bytes), which is returned. */
  async read(offset: number, length: number, opts: { df?: boolean; fua?: boolean; into?: Buffer } = {}): Promise<Buffer> {
    const flags = (opts.df ? CMD_FLAG_DF : 0) | (opts.fua ? CMD_FLAG_FUA : 0);
    const r = this.check(await this.request({ type: CMD_READ, flags, offset, length, into: opts.into }), 'read', offset);
    return r.data as Buffer;
  }

  async write(offset: number, data: Buffer, opts: { fua?: boolean } = {}): Promise<void> {
    this.check(await this.request({ type: CMD_WRITE, flags: opts.fua ? CMD_FLAG_FUA : 0, offset, payload: data }), 'write', offset);
  }

  async flush(): Promise<void> {
    this.check(await this.request({ type: CMD_FLUSH }), 'flush', 0);
  }

  async trim(offset: number, length: number, opts: { fua?: boolean } = {}): Promise<void> {
    this.check(await this.request({ type: CMD_TRIM, flags: opts.fua ? CMD_FLAG_FUA : 0, offset, length }), 'trim', offset);
  }

  async writeZeroes(offset: number, length: number, opts: { fua?: boolean; noHole?: boolean; fastZero?: boolean } = {}): Promise<void> {
    const flags = (opts.fua ? CMD_FLAG_FUA : 0) | (opts.noHole ? CMD_FLAG_NO_HOLE : 0) | (opts.fastZero ? CMD_FLAG_FAST_ZERO : 0);
    this.check(await this.request({ type: CMD_WRITE_ZEROES, flags, offset, length }), 'write zeroes', offset);
  }

  async cache(offset: number, length: number): Promise<void> {
    this.check(await this.request({ type: CMD_CACHE, offset, length }), 'cache', offset);
  }

  /** base:allocation extents from `offset` (covering a prefix of the range). */
  async blockStatus(offset: number, length: number, opts: { reqOne?: boolean } = {}): Promise<WireExtent[]> {
    const r = await this.request({ type: CMD_BLOCK_STATUS, flags: opts.reqOne ? CMD_FLAG_REQ_ONE : 0, offset, length });
    this.check(r, 'block status', offset);
    return r.extents.find((e) => e.contextId === this.contextId)?.extents ?? [];
  }

  /** Soft disconnect: waits for replies in flight, sends DISC, waits for the server to close. */
  async disconnect(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()].map((p) => new Promise((res) => {
      const { resolve, reject } = p;
      p.resolve = (r) => { resolve(r); res(null); };
      p.reject = (e) => { reject(e); res(null); };
    })));
    if (!this.failure) {
      this.channel.socket.write(encodeRequest({ type: CMD_DISC, flags: 0, cookie: ++this.cookie, offset: 0, length: 0 }, this.extended));
      this.channel.socket.end();
    }
    await this.closed;
  }

  /** Hard disconnect. */
  close(): void {
    this.channel.socket.destroy();
  }

  private check(r: RawReply, what: string, offset: number): RawReply {
    if (r.errno !== 0) throw fromNbdErrno(r.errno, `nbd ${what} at ${offset}`, r.message || undefined);
    return r;
  }

  private onFrame(f: ClientFrame): void {
    if (f.kind !== 'reply') return this.protocolError(`unexpected ${f.kind} in transmission`);
    const h = f.header;
    const p = this.inflight.get(h.cookie);
    if (!p) return this.protocolError(`reply for unknown cookie ${h.cookie}`);
    p.reply.kinds.push(h.kind);
    if (f.placed !== undefined) p.placed = (p.placed ?? 0) + f.placed;
    if (h.kind === 'simple') {
      p.reply.errno = h.error;
      if (h.error === 0 && p.req.type === CMD_READ && f.placed === undefined) p.reply.data = f.payload;
      return this.finish(p);
    }
    try {
      if (f.placed === undefined) this.onChunk(p, h.type, f.payload);
    } catch (err) {
      return this.protocolError((err as Error).message);
    }
    if (h.flags & REPLY_FLAG_DONE) this.finish(p);
  }

  private onChunk(p: Pending, type: number, payload: Buffer): void {
    const r = p.reply;
    switch (type) {
      case REPLY_TYPE_NONE: return;
      case REPLY_TYPE_OFFSET_DATA: return this.place(p, readU64(payload, 0), payload.subarray(8), payload.length - 8);
      case REPLY_TYPE_OFFSET_HOLE: return this.place(p, readU64(payload, 0), null, payload.readUInt32BE(8));
      case REPLY_TYPE_BLOCK_STATUS:
      case REPLY_TYPE_BLOCK_STATUS_EXT:
        r.extents.push(decodeBlockStatusPayload(payload, type === REPLY_TYPE_BLOCK_STATUS_EXT));
        return;
      case REPLY_TYPE_ERROR:
      case REPLY_TYPE_ERROR_OFFSET: {
        const e = decodeErrorPayload(type, payload);
        if (r.errno === 0) Object.assign(r, { errno: e.error, message: e.message });
        return;
      }
      default:
        throw new NbdraidError('EPROTO', 'nbd client', `unknown chunk type ${type}`);
    }
  }

  /** Copies a data chunk (or zeroes for a hole) into the READ buffer, checking it lies in range. */
  private place(p: Pending, offset: number, data: Buffer | null, length: number): void {
    const at = offset - p.req.offset;
    if (p.req.type !== CMD_READ || at < 0 || at + length > p.req.length) {
      throw new NbdraidError('EPROTO', 'nbd client', `data chunk outside the request at ${offset}+${length}`);
    }
    p.reply.data ??= Buffer.alloc(p.req.length);
    if (data) data.copy(p.reply.data, at);
    else p.reply.data.fill(0, at, at + length);
    if (p.placed !== undefined) p.placed += length;
  }

  private finish(p: Pending): void {
    this.inflight.delete(p.req.cookie);
    // A caller's buffer holds old bytes: a successful READ must have covered every one of them.
    if (p.placed !== undefined && p.reply.errno === 0 && p.placed !== p.req.length) {
      p.reject(new NbdraidError('EPROTO', 'nbd client', `read at ${p.req.offset}: the reply covered ${p.placed} of ${p.req.length} bytes`));
      return;
    }
    p.resolve(p.reply);
  }

  private protocolError(message: string): void {
    this.fail(new NbdraidError('EPROTO', 'nbd client', message));
    this.channel.socket.destroy();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.inflight.values()) p.reject(this.failure);
    this.inflight.clear();
  }
}

function ignoreOptionError(err: unknown): void {
  if (!(err instanceof OptionError)) throw err;
}
