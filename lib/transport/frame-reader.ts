// Incremental frame readers: push() socket chunks split at any byte, pull whole frames with next().
// No sockets here. next() returns null until a whole frame is buffered, and throws
// NbdraidError('EPROTO') when the stream cannot be followed any more (bad magic, a payload
// beyond the discard cap); the owner then drops the connection.
//
// ServerFrameReader reads what a client sends: client flags, options, requests (+ payloads).
// ClientFrameReader reads what a server sends: greeting, option replies, the EXPORT_NAME reply,
// simple replies and structured/extended chunks.
import { ByteQueue } from './byte-queue.js';
import {
  decodeExportNameReply, decodeGreeting, decodeOptionHeader, decodeOptionReplyHeader,
  type OptionReplyHeader,
} from './codec-handshake.js';
import {
  type NbdRequest, type ReplyHeader, decodeReplyHeader, decodeRequest, replyHeaderSize, requestHeaderSize,
} from './codec-transmission.js';
import { protocolError, readU64 } from './codec-util.js';
import {
  CLIENT_FLAGS_SIZE, CMD_FLAG_PAYLOAD_LEN, CMD_WRITE, EXPORT_NAME_REPLY_ZEROES, GREETING_SIZE,
  OPTION_HEADER_SIZE, OPTION_REPLY_HEADER_SIZE, REPLY_TYPE_OFFSET_DATA,
} from './constants.js';

export interface ServerReaderLimits {
  /** Largest option body kept; larger ones are skipped (and answered ERR_TOO_BIG). */
  maxOptionData: number;
  /** Largest request payload kept; larger ones are skipped (and answered with an error). */
  maxPayload: number;
  /** Beyond this many bytes, skipping is not worth it: the stream is abandoned. */
  maxDiscard: number;
}

export type ServerFrame =
  | { kind: 'clientFlags'; flags: number }
  /** data is null when the body exceeded maxOptionData and was skipped. */
  | { kind: 'option'; option: number; length: number; data: Buffer | null }
  /** payload is null for commands without one, and when it exceeded maxPayload and was skipped. */
  | { kind: 'request'; req: NbdRequest; payload: Buffer | null; payloadDropped: boolean };

type Pending =
  | { kind: 'option'; option: number; length: number; drop: boolean; left: number }
  | { kind: 'request'; req: NbdRequest; length: number; drop: boolean; left: number; admitted?: boolean };

/**
 * Asked before a kept request payload gets its buffer: true to go on, false to wait (next() then
 * returns null with `waiting` set, and asks again on the next call). `whole`: the payload has
 * already arrived with its header.
 */
export type AdmitPayload = (length: number, whole: boolean) => boolean;

/** A kept body that did not arrive whole: its own buffer, filled from the queue or the socket. */
interface Body { buf: Buffer; filled: number }

export class ServerFrameReader {
  private readonly q = new ByteQueue();
  private phase: 'clientFlags' | 'options' | 'transmission' = 'clientFlags';
  private extended = false;
  private pending: Pending | null = null;
  private body: Body | null = null;

  /** `alloc` gives the buffer of a body that does not arrive whole with its header. */
  constructor(
    private limits: ServerReaderLimits,
    private readonly admit: AdmitPayload = () => true,
    private readonly alloc: (n: number) => Buffer = (n) => Buffer.allocUnsafe(n),
  ) {}

  /** A request header has arrived whose payload waits for admission. */
  get waiting(): boolean {
    const p = this.pending;
    return p?.kind === 'request' && !p.drop && !p.admitted;
  }

  /** Bytes of an admitted payload not yet returned in a frame (its owner releases them on close). */
  get admittedPending(): number {
    const p = this.pending;
    return p?.kind === 'request' && p.admitted ? p.length : 0;
  }

  /** A frame has begun arriving and is not complete. */
  get partial(): boolean {
    return this.q.length > 0 || this.pending !== null;
  }

  push(chunk: Buffer): void {
    this.q.push(chunk);
  }

  /** Bytes received but not yet returned in a frame. */
  get buffered(): number {
    return this.q.length + (this.body?.filled ?? 0);
  }

  /**
   * Where the next bytes from the socket may be read straight into: the unfilled rest of the body
   * being received (a WRITE payload), or null when the next bytes are headers (or a skipped body)
   * and must go through push().
   */
  directTarget(): Buffer | null {
    const b = this.body;
    return b && this.q.length === 0 ? b.buf.subarray(b.filled) : null;
  }

  /** `n` bytes were read into the buffer directTarget() returned. */
  directFilled(n: number): void {
    const b = this.body;
    if (!b || b.filled + n > b.buf.length) throw protocolError('frame', 'bytes read past the body being received');
    b.filled += n;
  }

  /** Switches to requests; bytes already buffered are parsed as requests. */
  startTransmission(extended: boolean, maxPayload: number): void {
    this.phase = 'transmission';
    this.extended = extended;
    this.limits = { ...this.limits, maxPayload };
  }

  next(): ServerFrame | null {
    if (this.pending) return this.finishPending(this.pending);
    if (this.phase === 'clientFlags') {
      if (this.q.length < CLIENT_FLAGS_SIZE) return null;
      this.phase = 'options';
      return { kind: 'clientFlags', flags: this.q.take(CLIENT_FLAGS_SIZE).readUInt32BE(0) };
    }
    if (this.phase === 'options') return this.nextOption();
    return this.nextRequest();
  }

  private nextOption(): ServerFrame | null {
    if (this.q.length < OPTION_HEADER_SIZE) return null;
    const { option, length } = decodeOptionHeader(this.q.take(OPTION_HEADER_SIZE));
    const p: Pending = this.pendingBody({ kind: 'option' as const, option, length }, this.limits.maxOptionData);
    this.pending = p;
    return this.finishPending(p);
  }

  private nextRequest(): ServerFrame | null {
    const size = requestHeaderSize(this.extended);
    if (this.q.length < size) return null;
    const req = decodeRequest(this.q.take(size), this.extended);
    const hasPayload = req.type === CMD_WRITE || (this.extended && (req.flags & CMD_FLAG_PAYLOAD_LEN) !== 0);
    if (!hasPayload) return { kind: 'request', req, payload: null, payloadDropped: false };
    const p: Pending = this.pendingBody({ kind: 'request' as const, req, length: req.length }, this.limits.maxPayload);
    this.pending = p;
    return this.finishPending(p);
  }

  private pendingBody<T extends { length: number }>(p: T, keepLimit: number): T & { drop: boolean; left: number } {
    if (p.length > this.limits.maxDiscard && p.length > keepLimit) {
      throw protocolError('frame', `body of ${p.length} bytes is too large to skip; disconnecting`);
    }
    return { ...p, drop: p.length > keepLimit, left: p.length };
  }

  /**
   * Completes the pending body: skipped as it arrives when dropped; when kept, taken from the queue
   * if it is all there, else gathered in a buffer of its own (which the socket may read into).
   */
  private finishPending(p: Pending): ServerFrame | null {
    let body: Buffer | null = null;
    if (p.kind === 'request' && !p.drop && !p.admitted) {
      if (!this.admit(p.length, this.q.length >= p.length)) return null;
      p.admitted = true;
    }
    if (p.drop) {
      p.left -= this.q.skip(p.left);
      if (p.left > 0) return null;
    } else if (!this.body && this.q.length >= p.length) {
      body = this.q.take(p.length);
    } else {
      const b = (this.body ??= { buf: this.alloc(p.length), filled: 0 });
      const k = Math.min(this.q.length, b.buf.length - b.filled);
      if (k > 0) b.filled += this.q.takeInto(b.buf, b.filled, k);
      if (b.filled < b.buf.length) return null;
      body = b.buf;
      this.body = null;
    }
    this.pending = null;
    if (p.kind === 'option') return { kind: 'option', option: p.option, length: p.length, data: body };
    return { kind: 'request', req: p.req, payload: body, payloadDropped: p.drop };
  }
}

export type ClientFrame =
  | { kind: 'greeting'; handshakeFlags: number }
  | { kind: 'optionReply'; header: OptionReplyHeader; data: Buffer }
  | { kind: 'exportNameReply'; size: number; transmissionFlags: number }
  /**
   * payload: the chunk payload, or a simple READ reply's data. `placed`: the READ data went
   * straight into the request's target buffer (this many bytes); payload is then empty.
   */
  | { kind: 'reply'; header: ReplyHeader; payload: Buffer; placed?: number };

/** For a simple reply, how many data bytes follow it (the READ length when error is 0). */
export type SimpleReplyDataLength = (cookie: bigint, error: number) => number;

/** Where a READ's data goes: the caller's buffer and the volume offset of its first byte. */
export interface ReadTarget { buf: Buffer; offset: number }

/** The target of the READ with this cookie, or null to receive its data in a buffer of its own. */
export type ReadTargetOf = (cookie: bigint) => ReadTarget | null;

const NO_BYTES = Buffer.alloc(0);

export class ClientFrameReader {
  private readonly q = new ByteQueue();
  private phase: 'greeting' | 'options' | 'exportName' | 'transmission' = 'greeting';
  private noZeroes = false;
  private optionHeader: OptionReplyHeader | null = null;
  private header: ReplyHeader | null = null;
  private bodyLength = 0;
  /** The caller's buffer (its part for this chunk) a READ's data is being received into. */
  private direct: { buf: Buffer; filled: number } | null = null;

  constructor(
    private readonly simpleDataLength: SimpleReplyDataLength,
    private readonly maxPayload = 64 << 20,
    private readonly readTarget: ReadTargetOf = () => null,
  ) {}

  push(chunk: Buffer): void {
    this.q.push(chunk);
  }

  /** Options phase (after the greeting is read it is entered by itself). */
  expectExportNameReply(noZeroes: boolean): void {
    this.phase = 'exportName';
    this.noZeroes = noZeroes;
  }

  startTransmission(): void {
    this.phase = 'transmission';
  }

  next(): ClientFrame | null {
    switch (this.phase) {
      case 'greeting':
        if (this.q.length < GREETING_SIZE) return null;
        this.phase = 'options';
        return { kind: 'greeting', ...decodeGreeting(this.q.take(GREETING_SIZE)) };
      case 'options':
        return this.nextOptionReply();
      case 'exportName': {
        const size = 10 + (this.noZeroes ? 0 : EXPORT_NAME_REPLY_ZEROES);
        if (this.q.length < size) return null;
        this.phase = 'transmission';
        return { kind: 'exportNameReply', ...decodeExportNameReply(this.q.take(size)) };
      }
      default:
        return this.nextReply();
    }
  }

  private nextOptionReply(): ClientFrame | null {
    if (!this.optionHeader) {
      if (this.q.length < OPTION_REPLY_HEADER_SIZE) return null;
      const header = decodeOptionReplyHeader(this.q.take(OPTION_REPLY_HEADER_SIZE));
      if (header.length > this.maxPayload) throw protocolError('option reply', `reply of ${header.length} bytes`);
      this.optionHeader = header;
    }
    if (this.q.length < this.optionHeader.length) return null;
    const frame: ClientFrame = { kind: 'optionReply', header: this.optionHeader, data: this.q.take(this.optionHeader.length) };
    this.optionHeader = null;
    return frame;
  }

  /**
   * Where the next bytes from the socket may be read straight into: the unfilled rest of a READ's
   * data being received into its caller's buffer, or null when the next bytes must go through
   * push() (headers, other payloads, or bytes already queued ahead).
   */
  directTarget(): Buffer | null {
    const d = this.direct;
    return d && this.q.length === 0 ? d.buf.subarray(d.filled) : null;
  }

  /** `n` bytes were read into the buffer directTarget() returned. */
  directFilled(n: number): void {
    const d = this.direct;
    if (!d || d.filled + n > d.buf.length) throw protocolError('reply', 'bytes read past the data being received');
    d.filled += n;
  }

  private nextReply(): ClientFrame | null {
    if (!this.header) {
      if (this.q.length < 4) return null;
      const size = replyHeaderSize(this.q.peekUInt32());
      if (size === 0) throw protocolError('reply', `bad reply magic 0x${this.q.peekUInt32().toString(16)}`);
      if (this.q.length < size) return null;
      const header = decodeReplyHeader(this.q.take(size));
      const length = header.kind === 'simple' ? this.simpleDataLength(header.cookie, header.error) : header.length;
      if (length > this.maxPayload) throw protocolError('reply', `payload of ${length} bytes is too large`);
      this.header = header;
      this.bodyLength = length;
    }
    const header = this.header;
    if (!this.direct && this.beginDirect(header, this.bodyLength) === 'wait') return null;
    const d = this.direct;
    if (d) {
      if (d.filled < d.buf.length && this.q.length > 0) d.filled += this.q.takeInto(d.buf, d.filled, Math.min(this.q.length, d.buf.length - d.filled));
      if (d.filled < d.buf.length) return null;
      this.direct = null;
      this.header = null;
      return { kind: 'reply', header, payload: NO_BYTES, placed: d.buf.length };
    }
    if (this.q.length < this.bodyLength) return null;
    this.header = null;
    return { kind: 'reply', header, payload: this.q.take(this.bodyLength) };
  }

  /**
   * READ data whose request named a target goes straight into it (from the queue, or from the
   * socket through directTarget): a simple reply's data, or an OFFSET_DATA chunk's once its
   * offset has arrived ('wait' until then). 'no': the body is returned as a payload.
   */
  private beginDirect(h: ReplyHeader, length: number): 'yes' | 'no' | 'wait' {
    const simpleData = h.kind === 'simple' && h.error === 0 && length > 0;
    const chunkData = h.kind !== 'simple' && h.type === REPLY_TYPE_OFFSET_DATA && length > 8;
    if (!simpleData && !chunkData) return 'no';
    const t = this.readTarget(h.cookie);
    if (!t || (simpleData && length !== t.buf.length)) return 'no';
    if (simpleData) {
      this.direct = { buf: t.buf, filled: 0 };
      return 'yes';
    }
    if (this.q.length < 8) return 'wait';
    const at = readU64(this.q.take(8), 0) - t.offset;
    const n = length - 8;
    if (at < 0 || at + n > t.buf.length) throw protocolError('reply', `data chunk outside the request at ${at + t.offset}+${n}`);
    this.direct = { buf: t.buf.subarray(at, at + n), filled: 0 };
    return 'yes';
  }
}
