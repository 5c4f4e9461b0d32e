// The worker thread behind DbThread: one database connection per open coordinator, answering
// named operations in arrival order. A busy database makes this thread wait, never the I/O thread.
// A coordinator that asks for change notification also gets a second connection here whose
// data_version is polled: it moves on every commit by any other connection, this thread's own
// operations included, and each move is posted as { kind: 'changed', conn }.
import type { Database } from 'better-sqlite3';
import { parentPort } from 'node:worker_threads';
import { NbdraidError } from '../errors.js';
import { dataVersion, openDatabase } from './db.js';
import { dbOps } from './db-thread-ops.js';

type Call =
  | { id: number; kind: 'open'; conn: number; stateDir: string; controller: number; watchMs?: number }
  | { id: number; kind: 'close'; conn: number }
  | { id: number; kind: 'op'; conn: number; op: string; args: unknown[] };

interface Conn { db: Database; ops: Record<string, (...a: unknown[]) => unknown>; watch?: { db: Database; timer: NodeJS.Timeout } }

const conns = new Map<number, Conn>();

function watch(conn: number, stateDir: string, everyMs: number): Conn['watch'] {
  const db = openDatabase(stateDir);
  let last = dataVersion(db);
  const timer = setInterval(() => {
    try {
      const v = dataVersion(db);
      if (v === last) return;
      last = v;
      parentPort!.postMessage({ kind: 'changed', conn });
    } catch {
      // A failing read is retried at the next tick; the operations report the database's errors.
    }
  }, everyMs);
  return { db, timer };
}

function run(m: Call): unknown {
  if (m.kind === 'open') {
    const db = openDatabase(m.stateDir);
    const c: Conn = { db, ops: dbOps(db, m.stateDir, m.controller) as unknown as Record<string, (...a: unknown[]) => unknown> };
    if (m.watchMs !== undefined) c.watch = watch(m.conn, m.stateDir, m.watchMs);
    conns.set(m.conn, c);
    return undefined;
  }
  const c = conns.get(m.conn);
  if (!c) throw new Error(`coordination connection ${m.conn} is not open`);
  if (m.kind === 'close') {
    conns.delete(m.conn);
    if (c.watch) {
      clearInterval(c.watch.timer);
      c.watch.db.close();
    }
    c.db.close();
    return undefined;
  }
  return c.ops[m.op](...m.args);
}

parentPort!.on('message', (m: Call) => {
  try {
    parentPort!.postMessage({ id: m.id, ok: true, value: run(m) });
  } catch (err) {
    const e = err as Error & { code?: string; context?: string };
    parentPort!.postMessage({ id: m.id, ok: false, error: { message: e.message, code: e.code, context: e instanceof NbdraidError ? e.context : undefined } });
  }
});
