// Coordination statements that write, wait for the write lock or fsync run on a worker thread
// with its own connection; the caller gets a promise. The thread serving NBD thus never sleeps
// in busy_timeout behind another process's transaction, nor in a synced commit.
import { Worker } from 'node:worker_threads';
import { NbdraidError, isErrorCode } from '../errors.js';
import { ChangeFanout } from './change-watcher.js';
import type { DbOpName, DbOps, WorkOps } from './db-thread-ops.js';

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void };
type ThreadError = { message: string; code?: string; context?: string };
type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: ThreadError } | { kind: 'changed'; conn: number };

/** The thread's error as the caller's: same message, code and context (an SQLite code becomes EIO). */
function rebuilt(e: ThreadError): NbdraidError {
  const code = isErrorCode(e.code) ? e.code : 'EIO';
  if (e.context === undefined) return new NbdraidError(code, 'coordination', e.message);
  return new NbdraidError(code, e.context, e.message.slice(e.context.length + 2));
}

/** `T`'s operations as promises. */
export type AsyncOps<T> = { [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<R> : never };
export type AsyncDbOps = AsyncOps<DbOps>;
/** The part a backend other than the SQLite thread answers so far (lib/coordination/pg). */
export type AsyncWorkOps = AsyncOps<WorkOps>;

/** Told of every operation answered: its name, the time from the call to the answer (s), and whether it succeeded. */
export type DbOpObserver = (op: DbOpName, seconds: number, ok: boolean) => void;

/**
 * One coordination thread per process, shared by its coordinators (each with its own connection
 * there); it does not keep the process alive when idle. Threads loading the SQLite addon are
 * started once, not per coordinator.
 */
class SharedThread {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private users = 0;
  private readonly watchers = new Map<number, ChangeFanout>();

  /** Change notices for connection `conn` go to `to` (until forget). */
  route(conn: number, to: ChangeFanout): void {
    this.watchers.set(conn, to);
  }

  forget(conn: number): void {
    this.watchers.delete(conn);
  }

  send(msg: Record<string, unknown>): Promise<unknown> {
    const w = this.start();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.users++;
      w.ref();
      w.postMessage({ ...msg, id });
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./db-thread-main.js', import.meta.url));
    w.on('message', (r: Reply) => this.settle(r));
    w.on('error', (err) => this.die(err));
    w.on('exit', (code) => this.die(new Error(`the coordination thread exited (code ${code})`)));
    this.worker = w;
    return w;
  }

  private settle(r: Reply): void {
    if ('kind' in r) {
      this.watchers.get(r.conn)?.notify();
      return;
    }
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (--this.users === 0) this.worker?.unref();
    if (r.ok) p.resolve(r.value);
    else p.reject(rebuilt(r.error));
  }

  private die(err: Error): void {
    this.worker = undefined;
    this.users = 0;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

const shared = new SharedThread();
let nextConn = 1;

/** A coordinator's connection on the coordination thread, and its operations as promises. */
export class DbThread {
  readonly ops: AsyncDbOps;
  private readonly conn = nextConn++;
  private readonly opened: Promise<unknown>;
  private closed: Promise<void> | undefined;
  private observer: DbOpObserver | undefined;
  /** Commits by any connection, seen by the thread's data_version poll (only with `watchMs`). */
  readonly changes = new ChangeFanout();

  /** `watchMs`: poll data_version there this often and tell `changes`. */
  constructor(stateDir: string, controller: number, opts: { watchMs?: number } = {}) {
    if (opts.watchMs !== undefined) shared.route(this.conn, this.changes);
    this.opened = shared.send({ kind: 'open', conn: this.conn, stateDir, controller, watchMs: opts.watchMs });
    this.opened.catch(() => undefined); // reported by the first call
    this.ops = new Proxy({} as AsyncDbOps, {
      get: (_, op: string) => (...args: unknown[]) => this.call(op as DbOpName, args),
    });
  }

  /** From now on `observer` hears of every operation (one observer; the metrics time commits with it). */
  observe(observer: DbOpObserver): void {
    this.observer = observer;
  }

  /** Answers every call already made, then closes this connection. */
  close(): Promise<void> {
    this.changes.close();
    shared.forget(this.conn);
    this.closed ??= this.opened.then(() => shared.send({ kind: 'close', conn: this.conn })).then(() => undefined, () => undefined);
    return this.closed;
  }

  private async call(op: DbOpName, args: unknown[]): Promise<never> {
    if (this.closed) throw new NbdraidError('ESHUTDOWN', 'coordination', `'${op}' after the coordination connection was closed`);
    await this.opened;
    const asked = performance.now();
    let ok = false;
    try {
      const value = (await shared.send({ kind: 'op', conn: this.conn, op, args })) as never;
      ok = true;
      return value;
    } finally {
      this.observer?.(op, (performance.now() - asked) / 1000, ok);
    }
  }
}
