// Client side of option haggling, one option at a time ("option mode"). NbdClient.connect() uses it
// for the usual GO handshake; tests use it directly to send any option, valid or not.
//
//   const hs = await ClientHandshake.open({ host: '127.0.0.1', port });
//   await hs.extendedHeaders();                       // or hs.structuredReply()
//   await hs.setMetaContext('disk', ['base:allocation']);
//   const client = await hs.go('disk');               // -> NbdClient in transmission
//
// With `tls` (credentials from loadClientTls), open() sends STARTTLS as the first option and goes on
// over TLS; a server that refuses it is left (the spec's advice against downgrades).
import net from 'node:net';
import type tls from 'node:tls';
import { NbdraidError, asNbdraidError } from '../errors.js';
import {
  type Info, decodeInfo, decodeMetaContextReply, decodeServerReply, encodeClientFlags, encodeInfoRequest,
  encodeMetaContextRequest, encodeOption,
} from './codec-handshake.js';
import {
  FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, INFO_BLOCK_SIZE, INFO_DESCRIPTION, INFO_NAME, OPT_ABORT, OPT_EXPORT_NAME,
  OPT_EXTENDED_HEADERS, OPT_GO, OPT_INFO, OPT_LIST, OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT,
  OPT_STARTTLS, OPT_STRUCTURED_REPLY, REP_ACK, REP_INFO, REP_META_CONTEXT, REP_SERVER,
} from './constants.js';
import { ClientFrameReader, type ClientFrame, type ReadTargetOf } from './frame-reader.js';
import { NbdClient, type ExportInfo } from './client.js';
import { upgradeClientSocket } from './tls.js';

export type Address = { host?: string; port: number } | { path: string };

export interface OptionReply { type: number; data: Buffer }

/** Thrown for an option error reply; `replyType` is the NBD_REP_ERR_* value. */
export class OptionError extends NbdraidError {
  constructor(readonly option: number, readonly replyType: number, message: string) {
    super('EPROTO', `option ${option}`, `server replied 0x${replyType.toString(16)}${message ? `: ${message}` : ''}`);
  }
}

function isErrorReply(type: number): boolean {
  return (type & 0x80000000) !== 0;
}

/** Shared by handshake and transmission: a socket feeding a ClientFrameReader. */
/** Bytes of the buffer that reads other than READ data land in. */
const SCRATCH_BYTES = 64 << 10;

export class FrameChannel {
  private queue: ClientFrame[] = [];
  private waiter: ((f: ClientFrame | Error) => void) | null = null;
  private failure: Error | null = null;
  /** In transmission, frames go here instead of the queue. */
  onFrame: ((f: ClientFrame) => void) | null = null;
  onError: ((err: Error) => void) | null = null;
  /** How many data bytes follow a simple reply (set by NbdClient: the READ length on success). */
  simpleDataLength: (cookie: bigint, error: number) => number = () => 0;
  /** Where a READ's data is to be placed (set by NbdClient: the caller's buffer, when given). */
  readTargetOf: ReadTargetOf = () => null;

  /** Reads that are not READ data (headers, replies to options) land here first. */
  private scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  private readonly onSocketData = (chunk: Buffer): void => this.onData(chunk);
  private readonly onSocketError = (err: Error): void => this.fail(asNbdraidError(err, 'nbd client'));
  private readonly onSocketClose = (): void => this.fail(new NbdraidError('EIO', 'nbd client', 'connection closed by the server'));

  constructor(public socket: net.Socket, readonly reader: ClientFrameReader) {
    socket.setNoDelay(true);
    this.attach(socket);
  }

  /** Reads from `socket` from now on (the TLS socket after STARTTLS). */
  attach(socket: net.Socket): void {
    this.socket = socket;
    socket.on('data', this.onSocketData);
    socket.on('error', this.onSocketError);
    socket.on('close', this.onSocketClose);
  }

  /** Stops reading the current socket and hands it over (to be wrapped in TLS). */
  detach(): net.Socket {
    const s = this.socket;
    s.pause();
    s.removeListener('data', this.onSocketData);
    s.removeListener('error', this.onSocketError);
    s.removeListener('close', this.onSocketClose);
    s.on('error', () => {}); // its errors now reach the TLS socket over it
    return s;
  }

  next(): Promise<ClientFrame> {
    const f = this.queue.shift();
    if (f) return Promise.resolve(f);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = (x) => (x instanceof Error ? reject(x) : resolve(x));
    });
  }

  /** Bytes read elsewhere (before this channel existed), in order. */
  receive(chunk: Buffer): void {
    this.onData(chunk);
  }

  /** The buffer a socket built with `onread` (a plain connection) reads into next. */
  readTarget(): Buffer {
    return this.reader.directTarget() ?? this.scratch;
  }

  /** `n` bytes were read into `into`, the buffer readTarget() gave. */
  readFilled(n: number, into: Buffer): void {
    if (into !== this.scratch) {
      try {
        this.reader.directFilled(n);
      } catch (err) {
        return this.abort(err as Error);
      }
      return this.onData(null);
    }
    if (n < SCRATCH_BYTES / 4) return this.onData(Buffer.from(into.subarray(0, n))); // small: a copy; scratch stays ours
    this.scratch = Buffer.allocUnsafe(SCRATCH_BYTES); // large: handed over whole, as 'data' would
    this.onData(into.subarray(0, n));
  }

  private onData(chunk: Buffer | null): void {
    if (chunk) this.reader.push(chunk);
    try {
      for (let f = this.reader.next(); f; f = this.reader.next()) this.deliver(f);
    } catch (err) {
      this.abort(err as Error);
    }
  }

  private abort(err: Error): void {
    this.fail(err);
    this.socket.destroy();
  }

  private deliver(f: ClientFrame): void {
    if (this.onFrame) return this.onFrame(f);
    const w = this.waiter;
    this.waiter = null;
    if (w) w(f);
    else this.queue.push(f);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    const w = this.waiter;
    this.waiter = null;
    w?.(err);
    this.onError?.(err);
  }
}

export class ClientHandshake {
  /** STARTTLS succeeded: the connection runs over TLS. */
  tls = false;
  structured = false;
  extended = false;
  /** Context ids the server gave on the last SET_META_CONTEXT, by name. */
  contexts = new Map<string, number>();
  private readonly noZeroes: boolean;

  private constructor(private readonly channel: FrameChannel, readonly handshakeFlags: number, clientFlags: number, private readonly raw: net.Socket) {
    this.noZeroes = (clientFlags & FLAG_NO_ZEROES) !== 0;
  }

  /**
   * Connects, reads the greeting and sends client flags (default: what the server offers). With
   * `timeoutMs`, a connection silent that long before transmission is dropped with ETIMEDOUT.
   */
  static async open(addr: Address, opts: { clientFlags?: number; tls?: tls.ConnectionOptions; timeoutMs?: number } = {}): Promise<ClientHandshake> {
    // A plain connection reads into buffers of the channel's choosing (READ data straight into its
    // caller's buffer); one that will carry TLS reads through 'data', as TLS wraps it.
    const sink = opts.tls ? undefined : new LateSink();
    const socket = await connectSocket(addr, opts.timeoutMs ?? 0, sink);
    const reader: ClientFrameReader = new ClientFrameReader(
      (cookie, error): number => channel.simpleDataLength(cookie, error), undefined, (cookie) => channel.readTargetOf(cookie),
    );
    const channel: FrameChannel = new FrameChannel(socket, reader);
    sink?.bind(channel);
    const greeting = await channel.next();
    if (greeting.kind !== 'greeting') throw new NbdraidError('EPROTO', 'nbd client', 'expected a greeting');
    const flags = opts.clientFlags ?? greeting.handshakeFlags & (FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    socket.write(encodeClientFlags(flags));
    const hs = new ClientHandshake(channel, greeting.handshakeFlags, flags, socket);
    if (opts.tls) {
      try {
        await hs.startTls(opts.tls, 'path' in addr ? undefined : addr.host ?? '127.0.0.1');
      } catch (err) {
        hs.close();
        throw err;
      }
    }
    return hs;
  }

  /** STARTTLS, then the TLS handshake on the same socket; what was negotiated before is forgotten. */
  async startTls(opts: tls.ConnectionOptions, host?: string): Promise<void> {
    await this.optionOk(OPT_STARTTLS);
    const secure = await upgradeClientSocket(this.channel.detach(), opts, host);
    this.channel.attach(secure);
    this.tls = true;
    this.structured = this.extended = false;
    this.contexts = new Map();
  }

  /** Sends raw bytes (tests use it to send malformed options). */
  sendRaw(b: Buffer): void {
    this.channel.socket.write(b);
  }

  /** Sends an option and collects replies up to the final one (ACK or an error). */
  async option(option: number, data?: Buffer): Promise<OptionReply[]> {
    this.sendRaw(encodeOption(option, data));
    const replies: OptionReply[] = [];
    for (;;) {
      const f = await this.channel.next();
      if (f.kind !== 'optionReply') throw new NbdraidError('EPROTO', 'nbd client', `unexpected ${f.kind}`);
      replies.push({ type: f.header.type, data: f.data });
      if (f.header.type === REP_ACK || isErrorReply(f.header.type)) return replies;
    }
  }

  /** Like option(), but throws OptionError on an error reply; returns the non-ACK replies. */
  async optionOk(option: number, data?: Buffer): Promise<OptionReply[]> {
    const replies = await this.option(option, data);
    const last = replies[replies.length - 1];
    if (isErrorReply(last.type)) throw new OptionError(option, last.type, last.data.toString('utf8'));
    return replies.slice(0, -1);
  }

  async structuredReply(): Promise<void> {
    await this.optionOk(OPT_STRUCTURED_REPLY);
    this.structured = true;
  }

  async extendedHeaders(): Promise<void> {
    await this.optionOk(OPT_EXTENDED_HEADERS);
    this.extended = this.structured = true;
  }

  async list(): Promise<{ name: string; description: string }[]> {
    const replies = await this.optionOk(OPT_LIST);
    return replies.filter((r) => r.type === REP_SERVER).map((r) => decodeServerReply(r.data));
  }

  async info(name: string, infos = [INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE]): Promise<Info[]> {
    const replies = await this.optionOk(OPT_INFO, encodeInfoRequest(name, infos));
    return replies.filter((r) => r.type === REP_INFO).map((r) => decodeInfo(r.data));
  }

  async listMetaContext(name: string, queries: string[]): Promise<{ id: number; name: string }[]> {
    const replies = await this.optionOk(OPT_LIST_META_CONTEXT, encodeMetaContextRequest(name, queries));
    return replies.filter((r) => r.type === REP_META_CONTEXT).map((r) => decodeMetaContextReply(r.data));
  }

  async setMetaContext(name: string, queries: string[]): Promise<Map<string, number>> {
    const replies = await this.optionOk(OPT_SET_META_CONTEXT, encodeMetaContextRequest(name, queries));
    this.contexts = new Map(replies.filter((r) => r.type === REP_META_CONTEXT).map((r) => {
      const c = decodeMetaContextReply(r.data);
      return [c.name, c.id];
    }));
    return this.contexts;
  }

  /** Ends option haggling with GO and returns the client in transmission. */
  async go(name: string, infos = [INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE]): Promise<NbdClient> {
    const replies = await this.optionOk(OPT_GO, encodeInfoRequest(name, infos));
    const info = exportInfo(replies.filter((r) => r.type === REP_INFO).map((r) => decodeInfo(r.data)));
    return this.transmit(info);
  }

  /** Ends option haggling with the old EXPORT_NAME (no error reply possible: failure closes). */
  async exportName(name: string): Promise<NbdClient> {
    this.channel.reader.expectExportNameReply(this.noZeroes);
    this.sendRaw(encodeOption(OPT_EXPORT_NAME, Buffer.from(name, 'utf8')));
    const f = await this.channel.next();
    if (f.kind !== 'exportNameReply') throw new NbdraidError('EPROTO', 'nbd client', `unexpected ${f.kind}`);
    return this.transmit({ size: f.size, transmissionFlags: f.transmissionFlags });
  }

  /** Sends ABORT, waits for the ACK (or the server closing first), closes. */
  async abort(): Promise<void> {
    await this.option(OPT_ABORT).catch(() => []);
    this.channel.socket.destroy();
  }

  close(): void {
    this.channel.socket.destroy();
  }

  private transmit(info: ExportInfo): NbdClient {
    this.raw.setTimeout(0);
    this.channel.reader.startTransmission();
    return new NbdClient(this.channel, info, {
      structured: this.structured, extended: this.extended, contextId: this.contexts.get('base:allocation') ?? 0,
    });
  }
}

function exportInfo(infos: Info[]): ExportInfo {
  const out: ExportInfo = { size: 0, transmissionFlags: 0 };
  for (const i of infos) {
    if ('size' in i) Object.assign(out, { size: i.size, transmissionFlags: i.transmissionFlags });
    else if ('minimum' in i) out.blockSizes = { minimum: i.minimum, preferred: i.preferred, maximum: i.maximum };
    else if ('name' in i) out.name = i.name;
    else if ('description' in i) out.description = i.description;
  }
  return out;
}

/**
 * The `onread` sink of a connection made before its channel exists: bytes read before bind() are
 * kept (copied) and handed over on bind, in order.
 */
class LateSink {
  private channel: FrameChannel | null = null;
  private early: Buffer[] = [];
  private readonly spare = Buffer.allocUnsafe(SCRATCH_BYTES);

  bind(channel: FrameChannel): void {
    this.channel = channel;
    const early = this.early;
    this.early = [];
    for (const b of early) channel.receive(b);
  }

  target(): Buffer {
    return this.channel ? this.channel.readTarget() : this.spare;
  }

  filled(n: number, into: Buffer): void {
    if (into !== this.spare) return this.channel?.readFilled(n, into); // a buffer the channel gave
    const copy = Buffer.from(into.subarray(0, n));
    if (this.channel) this.channel.receive(copy);
    else this.early.push(copy);
  }
}

function connectSocket(addr: Address, timeoutMs: number, sink?: LateSink): Promise<net.Socket> {
  const where = `connect ${'path' in addr ? addr.path : `${addr.host ?? '127.0.0.1'}:${addr.port}`}`;
  const onread = sink && { buffer: () => sink.target(), callback: (n: number, into: Uint8Array) => { sink.filled(n, into as Buffer); return true; } };
  return new Promise((resolve, reject) => {
    const socket = 'path' in addr
      ? net.connect({ path: addr.path, onread })
      : net.connect({ port: addr.port, host: addr.host ?? '127.0.0.1', onread });
    if (timeoutMs > 0) {
      socket.setTimeout(timeoutMs, () => socket.destroy(new NbdraidError('ETIMEDOUT', where, `no answer within ${timeoutMs} ms`)));
    }
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err) => reject(asNbdraidError(err, where)));
  });
}
