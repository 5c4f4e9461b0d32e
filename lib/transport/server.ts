// NbdServer: serves any BlockDevice over NBD (fixed newstyle, structured replies, extended headers).
//
//   const server = new NbdServer({ exports: [{ name: 'disk', device }] });
//   const addr = await server.listen({ host: '127.0.0.1', port: 10809 });  // or { path: '/run/x.sock' }
//   server.addExport({ name: 'other', device: other, readOnly: true, description: '...' });
//   server.removeExport('other');      // new clients no longer see it; open connections keep it
//   await server.close();              // graceful: in-flight requests finish, then connections close
//
// The empty export name selects the export added with `default: true`, else the first one added.
// The server never closes the devices it serves; their owner does, after close().
import fs from 'node:fs';
import net from 'node:net';
import { NbdraidError } from '../errors.js';
import { BufferPool } from './buffer-pool.js';
import { type ExportSpec, ExportRegistry } from './exports.js';
import { PayloadBudget } from './payload-budget.js';
import { type ServerStats, Session, type SessionHost, type SessionLimits } from './session.js';
import type { RequestObserver } from './stats.js';
import type { ServerTls } from './tls.js';

export interface NbdServerOptions {
  exports?: ExportSpec[];
  /** A client must finish option haggling within this time (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Options allowed per connection (default 256). */
  maxOptions?: number;
  /** Requests in flight per connection before the socket is paused (default 64). */
  maxInflightRequests?: number;
  /** Bytes in flight per connection before the socket is paused (default 64 MiB). */
  maxInflightBytes?: number;
  /** Largest option body kept (default 64 KiB); larger ones get ERR_TOO_BIG. */
  maxOptionData?: number;
  /** Largest oversized body skipped to stay in sync (default 64 MiB); beyond it, disconnect. */
  maxDiscard?: number;
  /** After close(), connections still haggling or not closing are dropped after this (default 2 s). */
  shutdownGraceMs?: number;
  /** STARTTLS credentials and policy (loadServerTls); TLS is off without them. */
  tls?: ServerTls | null;
  /** Request payload bytes held at once over all connections (default 256 MiB); beyond, payloads wait. */
  payloadBudget?: number;
  /** Connections open at once (default 256); one more is refused and closed. */
  maxConnections?: number;
  /** A request begun and not received whole within this drops its connection (default 60 s; 0: never). */
  requestTimeoutMs?: number;
  /** Told of every request answered, with its command, bytes, latency and outcome (metrics). */
  observer?: RequestObserver | null;
  /** Idle READ reply and WRITE payload buffers kept for reuse over all connections (default 64 MiB). */
  bufferPoolBytes?: number;
  /** Connection-level events (protocol errors); never called per request. */
  log?: (message: string) => void;
}

/** Defaults of the server-wide limits (docs/operations.md). */
export const DEFAULT_LIMITS = { payloadBudget: 256 << 20, maxConnections: 256, requestTimeoutMs: 60_000, bufferPoolBytes: 64 << 20 };

export type ListenAddress = { host?: string; port: number } | { path: string };

export class NbdServer implements SessionHost {
  readonly exports = new ExportRegistry();
  readonly limits: SessionLimits;
  readonly budget: PayloadBudget;
  readonly maxConnections: number;
  readonly stats: ServerStats = {
    connections: 0, refusedConnections: 0, requests: 0, protocolErrors: 0, peakInflightRequests: 0, peakInflightBytes: 0, peakBufferedBytes: 0, peakUnsentBytes: 0, directReadBytes: 0,
  };
  shuttingDown = false;
  readonly tls: ServerTls | null;
  readonly observer: RequestObserver | null;
  readonly buffers: BufferPool;
  private readonly sessions = new Set<Session>();
  private readonly listeners: net.Server[] = [];
  private readonly socketPaths: string[] = [];
  private readonly shutdownGraceMs: number;
  private readonly logFn: (message: string) => void;
  private closing: Promise<void> | null = null;
  private idle: (() => void) | null = null;

  constructor(opts: NbdServerOptions = {}) {
    const maxDiscard = opts.maxDiscard ?? 64 << 20;
    this.limits = {
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 30_000,
      maxOptions: opts.maxOptions ?? 256,
      maxInflightRequests: opts.maxInflightRequests ?? 64,
      maxInflightBytes: opts.maxInflightBytes ?? 64 << 20,
      requestTimeoutMs: opts.requestTimeoutMs ?? DEFAULT_LIMITS.requestTimeoutMs,
      reader: { maxOptionData: opts.maxOptionData ?? 64 << 10, maxPayload: 32 << 20, maxDiscard },
    };
    this.tls = opts.tls ?? null;
    this.observer = opts.observer ?? null;
    this.buffers = new BufferPool(opts.bufferPoolBytes ?? DEFAULT_LIMITS.bufferPoolBytes);
    this.budget = new PayloadBudget(opts.payloadBudget ?? DEFAULT_LIMITS.payloadBudget);
    this.maxConnections = opts.maxConnections ?? DEFAULT_LIMITS.maxConnections;
    this.shutdownGraceMs = opts.shutdownGraceMs ?? 2000;
    this.logFn = opts.log ?? (() => {});
    for (const spec of opts.exports ?? []) this.addExport(spec);
  }

  addExport(spec: ExportSpec): void {
    this.exports.add(spec);
  }

  removeExport(name: string): boolean {
    return this.exports.remove(name);
  }

  /** Starts accepting on a TCP address or a unix socket; resolves to the bound address. */
  async listen(addr: ListenAddress): Promise<net.AddressInfo | string> {
    if (this.shuttingDown) throw new NbdraidError('ESHUTDOWN', 'nbd server', 'server is closed');
    if ('path' in addr) await removeStaleSocket(addr.path);
    // Paused until the session takes the socket over, so that it can read into its own buffers.
    const srv = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      if ('path' in addr) srv.listen(addr.path, resolve);
      else srv.listen(addr.port, addr.host ?? '127.0.0.1', resolve);
    }).catch((err: NodeJS.ErrnoException) => {
      const where = 'path' in addr ? addr.path : `${addr.host ?? '127.0.0.1'}:${addr.port}`;
      throw new NbdraidError(err.code === 'EADDRINUSE' ? 'EBUSY' : 'EIO', `listen ${where}`,
        `${err.message}; choose another address or stop whoever holds it`, { cause: err });
    });
    srv.on('error', (err) => this.log(`listener error: ${err.message}`));
    this.listeners.push(srv);
    if ('path' in addr) this.socketPaths.push(addr.path);
    return srv.address() as net.AddressInfo | string;
  }

  /** Serves an already-connected socket (any duplex net.Socket). */
  accept(socket: net.Socket): void {
    if (this.shuttingDown) {
      socket.destroy();
      return;
    }
    if (this.sessions.size >= this.maxConnections) {
      this.stats.refusedConnections++;
      this.log(`nbd connection from ${socket.remoteAddress ?? 'unix socket'} refused: ${this.sessions.size} connections open, the most allowed (--max-connections)`);
      socket.destroy();
      return;
    }
    this.stats.connections++;
    this.sessions.add(new Session(this, socket));
  }

  /** Connections currently open. */
  get connectionCount(): number {
    return this.sessions.size;
  }

  /** Graceful shutdown; resolves when every connection and listener is closed. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  log(message: string): void {
    this.logFn(message);
  }

  sessionClosed(session: Session): void {
    this.sessions.delete(session);
    if (this.sessions.size === 0 && this.idle) this.idle();
  }

  private async shutdown(): Promise<void> {
    this.shuttingDown = true;
    const listenersClosed = this.listeners.map((l) => new Promise<void>((resolve) => l.close(() => resolve())));
    for (const s of this.sessions) s.shutdown();
    const grace = setTimeout(() => {
      for (const s of this.sessions) s.destroy();
    }, this.shutdownGraceMs);
    if (this.sessions.size > 0) await new Promise<void>((resolve) => { this.idle = resolve; });
    clearTimeout(grace);
    await Promise.all(listenersClosed);
    for (const p of this.socketPaths) fs.rmSync(p, { force: true });
  }
}

/** A unix socket path left by a dead server is removed; a live one is an error. */
async function removeStaleSocket(path: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.statSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new NbdraidError('EEXIST', `listen ${path}`, 'path exists and is not a socket; choose another path');
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path, () => { probe.destroy(); resolve(true); });
    probe.on('error', () => resolve(false));
  });
  if (live) throw new NbdraidError('EBUSY', `listen ${path}`, 'another server is listening there; choose another path');
  fs.rmSync(path, { force: true });
}
