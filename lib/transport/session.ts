// One client connection: greeting, option haggling, then requests until DISC, a protocol error,
// the socket closing or server shutdown. Never throws out of a socket callback: every failure
// ends this connection only.
//
// Memory bound: frames are pulled from the reader only while this connection has fewer than
// maxInflightRequests requests and fewer than maxInflightBytes bytes (payloads, READ buffers and
// unsent replies) in flight; otherwise the socket is paused and resumed as requests complete or
// replies drain. So at most maxInflightBytes + one request's payload + one socket chunk is held.
import type net from 'node:net';
import { type BufferPool, HEADROOM } from './buffer-pool.js';
import { directReadSocket } from './direct-read.js';
import { type ServerFrame, ServerFrameReader, type ServerReaderLimits } from './frame-reader.js';
import { encodeGreeting } from './codec-handshake.js';
import type { NbdRequest } from './codec-transmission.js';
import { CMD_DISC, CMD_READ } from './constants.js';
import { toNbdErrno } from './errno.js';
import type { ExportRegistry } from './exports.js';
import { HandshakeState, type OptionOutcome, SERVER_HANDSHAKE_FLAGS, acceptClientFlags, handleOption } from './handshake.js';
import type { PayloadBudget } from './payload-budget.js';
import { ReplyWriter } from './reply.js';
import { type ServerTls, upgradeServerSocket } from './tls.js';
import { RequestGuard } from './request-guard.js';
import { type RequestObserver, commandName, requestBytes } from './stats.js';
import { type TransmissionContext, dispatchRequest, validateRequest } from './transmission.js';
import { transmissionFlags } from './exports.js';

export interface SessionLimits {
  handshakeTimeoutMs: number;
  maxOptions: number;
  maxInflightRequests: number;
  maxInflightBytes: number;
  /** A request begun and not received whole within this is dropped with its connection (0: never). */
  requestTimeoutMs: number;
  reader: ServerReaderLimits;
}

/** Counters the server keeps across connections (tests read them to check the bounds). */
export interface ServerStats {
  connections: number;
  /** Connections closed at once because maxConnections were open. */
  refusedConnections: number;
  requests: number;
  protocolErrors: number;
  peakInflightRequests: number;
  peakInflightBytes: number;
  peakBufferedBytes: number;
  /** Largest backlog of replies written but not yet taken by the kernel, on one connection. */
  peakUnsentBytes: number;
  /** Payload bytes the socket read straight into their request's buffer (no copy). */
  directReadBytes: number;
}

export interface SessionHost {
  readonly exports: ExportRegistry;
  readonly shuttingDown: boolean;
  readonly limits: SessionLimits;
  readonly stats: ServerStats;
  /** STARTTLS credentials and policy; null when TLS is off. */
  readonly tls: ServerTls | null;
  /** Server-wide bound on payload bytes held (payload-budget.ts). */
  readonly budget: PayloadBudget;
  /** Told of every request answered (metrics); null when nobody listens. */
  readonly observer: RequestObserver | null;
  /** READ reply and WRITE payload buffers, reused once nothing uses them any more. */
  readonly buffers: BufferPool;
  log(message: string): void;
  sessionClosed(session: Session): void;
}

/** After we end our side, how long a client may keep the connection before it is destroyed. */
const LINGER_MS = 2000;

/** Reads that are not part of a body being received (headers, options) land here first. */
const SCRATCH_SIZE = 64 * 1024;

export class Session {
  private readonly reader: ServerFrameReader;
  private readonly hs = new HandshakeState();
  private phase: 'handshake' | 'transmission' | 'closing' = 'handshake';
  private options = 0;
  private timer: NodeJS.Timeout | null = null;
  private ctx: TransmissionContext | null = null;
  private replies: ReplyWriter | null = null;
  private inflight = 0;
  private inflightBytes = 0;
  private pumping = false;
  private paused = false;
  private corked = false;
  private closed = false;
  /** The accepted socket; after STARTTLS, the TLS socket over it. */
  private socket: net.Socket;
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_SIZE);
  /** Kept: a socket closed under TLS no longer knows its peer. */
  private readonly peer: string;
  private readonly guard: RequestGuard;

  /**
   * A socket that has not started reading (the server accepts with pauseOnConnect) is read
   * straight into WRITE payloads (direct-read.ts); any other is read through 'data' events.
   */
  constructor(private readonly host: SessionHost, accepted: net.Socket) {
    this.guard = new RequestGuard(host.budget, host.limits.requestTimeoutMs, {
      wake: () => this.pump(),
      timedOut: (ms) => this.destroy(`request not received within ${ms} ms`),
    });
    // A request payload gathered from several reads gets a pooled buffer, given back when its
    // request is done (releasePayload); an option body in the handshake gets a plain one.
    this.reader = new ServerFrameReader(host.limits.reader, (n, whole) => this.guard.admit(n, whole),
      (n) => (this.phase === 'transmission' ? host.buffers.takeView(n) : Buffer.allocUnsafe(n)));
    const direct = directReadSocket(accepted, {
      target: () => this.reader.directTarget() ?? this.scratch,
      filled: (n, into) => this.onRead(n, into),
    });
    const socket = (this.socket = direct ?? accepted);
    socket.setNoDelay(true);
    this.peer = socket.remoteAddress ?? 'unix socket';
    if (!direct) socket.on('data', this.onSocketData);
    socket.resume();
    socket.on('drain', this.onSocketDrain);
    socket.on('error', this.onSocketError);
    socket.on('close', () => this.onClose());
    this.timer = setTimeout(() => this.destroy('handshake timed out'), host.limits.handshakeTimeoutMs);
    this.send(encodeGreeting(SERVER_HANDSHAKE_FLAGS));
  }

  private readonly onSocketData = (chunk: Buffer): void => this.onData(chunk);
  private readonly onSocketDrain = (): void => this.pump();
  private readonly onSocketError = (): void => this.destroy();

  /** After the STARTTLS ACK: the plain socket stops reading, the ACK is flushed, the session goes on over TLS. */
  private startTls(): void {
    const raw = this.socket;
    raw.pause();
    raw.removeListener('data', this.onSocketData);
    raw.removeListener('drain', this.onSocketDrain);
    raw.uncork();
    // 'error' and 'close' stay on the plain socket: it closes when the TLS socket over it does.
    upgradeServerSocket(raw, this.host.tls as ServerTls, (err, secure) => {
      if (err || !secure) return this.destroy(err?.message ?? 'TLS: no TLS socket');
      this.socket = secure;
      secure.on('data', this.onSocketData);
      secure.on('drain', this.onSocketDrain);
      secure.on('error', this.onSocketError);
    });
  }

  /** Server shutdown: in transmission, finish what is in flight, answer the rest ESHUTDOWN, close. */
  shutdown(): void {
    if (this.phase === 'transmission') this.endIfIdle();
  }

  destroy(reason?: string): void {
    if (reason) {
      this.host.stats.protocolErrors++;
      this.host.log(`nbd connection from ${this.peer} dropped: ${reason}`);
    }
    this.phase = 'closing';
    this.socket.destroy();
  }

  /** A read into a buffer of ours: the scratch area (copied out, it is reused) or a body. */
  private onRead(n: number, into: Buffer): void {
    if (this.phase === 'closing') return;
    if (into === this.scratch) return this.onData(Buffer.from(this.scratch.subarray(0, n)));
    try {
      this.reader.directFilled(n);
    } catch (err) {
      return this.destroy((err as Error).message);
    }
    this.host.stats.directReadBytes += n;
    this.notePeakBuffered();
    this.pump();
  }

  private notePeakBuffered(): void {
    const stats = this.host.stats;
    if (this.reader.buffered > stats.peakBufferedBytes) stats.peakBufferedBytes = this.reader.buffered;
  }

  private onData(chunk: Buffer): void {
    if (this.phase === 'closing') return;
    this.reader.push(chunk);
    this.notePeakBuffered();
    this.pump();
  }

  /** Handles every whole frame buffered, unless over the in-flight bound (then pauses the socket). */
  private pump(): void {
    if (this.pumping || this.closed) return;
    this.pumping = true;
    try {
      while (this.phase !== 'closing') {
        if (this.phase === 'transmission' && this.overBound()) return this.setPaused(true);
        const frame = this.reader.next();
        if (!frame) return this.setPaused(this.reader.waiting); // a payload waiting for the budget
        this.onFrame(frame);
      }
    } catch (err) {
      this.destroy((err as Error).message);
    } finally {
      this.pumping = false;
      this.guard.watch(this.phase === 'transmission' && !this.paused && this.reader.partial && !this.reader.waiting, this.host.stats.requests);
    }
  }

  private overBound(): boolean {
    const { maxInflightRequests, maxInflightBytes } = this.host.limits;
    return this.inflight >= maxInflightRequests || this.inflightBytes + this.socket.writableLength >= maxInflightBytes;
  }

  private setPaused(paused: boolean): void {
    if (paused === this.paused) return;
    this.paused = paused;
    if (paused) this.socket.pause();
    else this.socket.resume();
  }

  private onFrame(frame: ServerFrame): void {
    if (frame.kind === 'request') return this.onRequest(frame.req, frame.payload, frame.payloadDropped);
    if (frame.kind === 'clientFlags') {
      if (!acceptClientFlags(this.hs, frame.flags)) this.destroy(`unknown client flags 0x${frame.flags.toString(16)}`);
      return;
    }
    if (++this.options > this.host.limits.maxOptions) return this.destroy('too many options');
    const env = { exports: this.host.exports, shuttingDown: this.host.shuttingDown, tls: this.host.tls?.mode ?? 'off' as const };
    const outcome = handleOption(this.hs, env, frame.option, frame.data);
    if (outcome.next === 'starttls' && this.reader.buffered > 0) {
      // The client's TLS hello comes only after our ACK: these bytes would be read as sent over TLS.
      return this.destroy('client sent data after STARTTLS before its reply');
    }
    for (const r of outcome.replies) this.send(r);
    if (outcome.next === 'close') this.end();
    else if (outcome.next === 'starttls') this.startTls();
    else if (outcome.next === 'transmission') this.startTransmission(outcome);
  }

  private startTransmission(outcome: Extract<OptionOutcome, { next: 'transmission' }>): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.phase = 'transmission';
    const exp = outcome.export;
    this.reader.startTransmission(this.hs.extended, exp.device.blockSizes.maximum);
    const host = this.host;
    this.ctx = {
      exp,
      flags: transmissionFlags(exp, this.hs.structured),
      extended: this.hs.extended,
      contextId: outcome.contextId,
      get shuttingDown() { return host.shuttingDown; },
    };
    this.replies = new ReplyWriter((b, done) => this.send(b, done), this.hs.structured, this.hs.extended);
  }

  private onRequest(req: NbdRequest, payload: Buffer | null, payloadDropped: boolean): void {
    const ctx = this.ctx as TransmissionContext;
    this.host.stats.requests++;
    if (payload) this.guard.taken(payload);
    if (req.type === CMD_DISC) {
      if (payload) this.releasePayload(payload);
      // No reply: stop reading, let what is in flight finish, then close.
      this.phase = 'closing';
      this.endIfIdle();
      return;
    }
    const rejection = validateRequest(ctx, req, payloadDropped);
    if (rejection) {
      if (payload) this.releasePayload(payload);
      this.observe(req, process.hrtime.bigint(), false);
      return (this.replies as ReplyWriter).error(req, rejection.errno, rejection.message);
    }
    void this.serve(ctx, req, payload);
  }

  /** Dispatches one valid request and replies; never rejects. */
  private async serve(ctx: TransmissionContext, req: NbdRequest, payload: Buffer | null): Promise<void> {
    const replies = this.replies as ReplyWriter;
    const isRead = req.type === CMD_READ;
    const cost = isRead ? req.length : payload ? payload.length : 0;
    this.noteStart(cost);
    const started = process.hrtime.bigint();
    let ok = false;
    const pool = this.host.buffers;
    const pooled = isRead ? pool.take(req.length) : null;
    const buf = pooled && pooled.subarray(HEADROOM - replies.readPrefix, HEADROOM + req.length);
    try {
      const extents = await dispatchRequest(ctx.exp.device, req, payload, buf && buf.subarray(replies.readPrefix));
      if (pooled && buf) replies.read(req, buf, () => pool.give(pooled));
      else if (extents) replies.blockStatus(req, ctx.contextId, extents);
      else replies.ok(req);
      ok = true;
    } catch (err) {
      if (pooled) pool.give(pooled); // never handed to the socket
      replies.error(req, toNbdErrno(err), (err as Error)?.message ?? String(err));
    } finally {
      if (payload) this.releasePayload(payload);
      this.inflight--;
      this.inflightBytes -= cost;
      this.observe(req, started, ok);
      this.afterRequest();
    }
  }

  /** Its request is done: the payload's budget goes back, and its buffer to the pool if it came from there. */
  private releasePayload(payload: Buffer): void {
    this.guard.release(payload);
    this.host.buffers.giveView(payload);
  }

  private observe(req: NbdRequest, started: bigint, ok: boolean): void {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.host.observer?.requestDone(commandName(req.type), requestBytes(req.type, req.length), seconds, ok);
  }

  private noteStart(cost: number): void {
    this.inflight++;
    this.inflightBytes += cost;
    const stats = this.host.stats;
    if (this.inflight > stats.peakInflightRequests) stats.peakInflightRequests = this.inflight;
    if (this.inflightBytes > stats.peakInflightBytes) stats.peakInflightBytes = this.inflightBytes;
  }

  private afterRequest(): void {
    if (this.phase === 'closing' || this.host.shuttingDown) this.endIfIdle();
    else if (this.paused) this.pump();
  }

  private endIfIdle(): void {
    if (this.inflight === 0) this.end();
  }

  /** Flushes what was sent, then closes; destroys a client that does not close in time. */
  private end(): void {
    this.phase = 'closing';
    if (this.closed) return;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
  }

  /**
   * Writes one message; replies finishing in the same tick go out in one writev. `done` runs once
   * the socket no longer needs `b` (written, failed, or never taken because the socket is gone).
   */
  private send(b: Buffer, done?: () => void): void {
    if (this.closed || this.socket.destroyed || this.socket.writableEnded) {
      done?.();
      return;
    }
    if (!this.corked) {
      const socket = this.socket;
      this.corked = true;
      socket.cork();
      process.nextTick(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    if (done) this.socket.write(b, done);
    else this.socket.write(b);
    const unsent = this.socket.writableLength;
    if (unsent > this.host.stats.peakUnsentBytes) this.host.stats.peakUnsentBytes = unsent;
  }

  private onClose(): void {
    this.closed = true;
    this.phase = 'closing';
    if (this.timer) clearTimeout(this.timer);
    this.guard.close(this.reader.admittedPending);
    this.host.sessionClosed(this);
  }
}
