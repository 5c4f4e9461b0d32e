// The worker thread behind DbThread: one database connection per open coordinator, answering
// named operations in arrival order. A busy database makes this thread wait, never the I/O thread.
import type { Database } from 'better-sqlite3';
import { parentPort } from 'node:worker_threads';
import { NbdraidError } from '../errors.js';
import { openDatabase } from './db.js';
import { dbOps } from './db-thread-ops.js';

type Call =
  | { id: number; kind: 'open'; conn: number; stateDir: string; controller: number }
  | { id: number; kind: 'close'; conn: number }
  | { id: number; kind: 'op'; conn: number; op: string; args: unknown[] };

const conns = new Map<number, { db: Database; ops: Record<string, (...a: unknown[]) => unknown> }>();

function run(m: Call): unknown {
  if (m.kind === 'open') {
    const db = openDatabase(m.stateDir);
    conns.set(m.conn, { db, ops: dbOps(db, m.stateDir, m.controller) as unknown as Record<string, (...a: unknown[]) => unknown> });
    return undefined;
  }
  const c = conns.get(m.conn);
  if (!c) throw new Error(`coordination connection ${m.conn} is not open`);
  if (m.kind === 'close') {
    conns.delete(m.conn);
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
