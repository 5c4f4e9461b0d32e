// SIGKILL of the serving controller during writes, then re-serve: every write acknowledged before
// a completed FLUSH is intact. Two NBD connections (multi-conn: a flush on one covers writes
// acknowledged on either) write rounds of non-overlapping extents of tagged 4 KiB blocks - partial
// stripes and aligned full stripes - then flush; a completed flush makes the round durable. The
// controller is killed while a round is in flight. After restart every block must hold its durable
// content, or, if a write since the last completed flush touched it, one of those writes' content
// (never a mix inside a block, never anything else). Then the resync of the dead controller's
// dirty regions must leave parity right (`nbdraid check` finds 0 mismatches), and with member 2
// failed every block still reads back exactly as before (reconstructed from parity).
import t from 'tap';
import { NbdraidError } from '../../lib/errors.js';
import { NbdClient } from '../../lib/transport/client.js';
import { withDeadline } from '../helpers/deadline.js';
import { createArray, lastTaskId, serveArray, waitTask, type ArrayProcess } from '../../harness/raid-array.js';
import { sleep } from '../helpers/processes.js';
import { tempDir } from '../helpers/temp-dir.js';

const BLOCK = 4096;
const STRIPE_BLOCKS = (4 * (512 << 10)) / BLOCK; // 4 data members x 512 KiB chunk
const WRITES_PER_ROUND = 48;
const MIN_ROUNDS = 6;
const MAX_ROUNDS = 10_000;
const WRITE_PHASE_MS = 20_000;

/** Block `block` as written by write `gen` (gen 0: never written, zeroes). */
function pattern(gen: number, block: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  if (gen === 0) return b;
  const word = Buffer.alloc(4);
  word.writeUInt32LE((Math.imul(gen, 0x9e3779b1) ^ block) >>> 0);
  b.fill(word, 8);
  b.writeUInt32LE(block, 0);
  b.writeUInt32LE(gen, 4);
  return b;
}

function extentData(gen: number, first: number, count: number): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => pattern(gen, first + i)));
}

/** What the test knows: per block the durable generation and those written since the last completed flush. */
class Ledger {
  readonly durable: Uint32Array;
  pending = new Map<number, number[]>();
  rounds = 0;
  constructor(readonly blocks: number) {
    this.durable = new Uint32Array(blocks);
  }

  issued(gen: number, first: number, count: number): void {
    for (let b = first; b < first + count; b++) this.pending.set(b, [...(this.pending.get(b) ?? []), gen]);
  }

  /** A flush completed: everything issued before it was acknowledged (rounds are serial), so it is durable. */
  flushed(): void {
    for (const [b, gens] of this.pending) this.durable[b] = gens[gens.length - 1];
    this.pending.clear();
    this.rounds++;
  }

  candidates(b: number): number[] {
    return [this.durable[b], ...(this.pending.get(b) ?? [])];
  }
}

/** Non-overlapping random extents for one round: 1-64 blocks, and now and then an aligned full stripe. */
function roundExtents(blocks: number): [number, number][] {
  const used = new Set<number>();
  const out: [number, number][] = [];
  while (out.length < WRITES_PER_ROUND) {
    const full = Math.random() < 0.15;
    const count = full ? STRIPE_BLOCKS : 1 + Math.floor(Math.random() * 64);
    let first = Math.floor(Math.random() * (blocks - count));
    if (full) first -= first % STRIPE_BLOCKS;
    let clash = false;
    for (let b = first; b < first + count && !clash; b++) clash = used.has(b);
    if (clash) continue;
    for (let b = first; b < first + count; b++) used.add(b);
    out.push([first, count]);
  }
  return out;
}

/**
 * The one way a request may fail here: the client's error for a connection the kill broke
 * (closed by the server, reset, or a write to a socket already gone).
 */
function isKillError(err: unknown): boolean {
  return err instanceof NbdraidError && err.code === 'EIO' && err.context === 'nbd client'
    && /connection closed by the server|ECONNRESET|EPIPE/.test(err.message);
}

interface WriteState {
  /** Requests not yet answered. */
  inFlight: number;
  /** Set just before the SIGKILL: from then on, and only then, requests may fail with the kill. */
  killing: boolean;
  /** Failures that the kill does not explain (any before it, or of another kind): they fail the test. */
  unexpected: unknown[];
}

/** Writes rounds until the connections break (the kill) or the bounds are reached. */
async function writeRounds(conns: NbdClient[], ledger: Ledger, st: WriteState): Promise<void> {
  let gen = 0;
  const deadline = Date.now() + WRITE_PHASE_MS;
  const failed = (errs: unknown[]): void => {
    st.unexpected.push(...errs.filter((e) => !(st.killing && isKillError(e))));
  };
  while (ledger.rounds < MAX_ROUNDS && Date.now() < deadline) {
    const writes = roundExtents(ledger.blocks).map(([first, count], i) => {
      gen++;
      ledger.issued(gen, first, count);
      st.inFlight++;
      return conns[i % conns.length].write(first * BLOCK, extentData(gen, first, count)).finally(() => { st.inFlight--; });
    });
    const errs = (await Promise.allSettled(writes)).flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    if (errs.length > 0) return failed(errs);
    try {
      await conns[ledger.rounds % conns.length].flush();
    } catch (err) {
      return failed([err]);
    }
    ledger.flushed();
  }
}

/** Reads every block; returns the generation each holds, or a description of the first bad block. */
async function readBack(server: ArrayProcess, ledger: Ledger, exact?: Uint32Array): Promise<{ gens: Uint32Array; bad: string[] }> {
  const c = await NbdClient.connect({ host: '127.0.0.1', port: server.ports[0], exportName: 'crash' });
  const gens = new Uint32Array(ledger.blocks);
  const bad: string[] = [];
  const step = 256;
  const check = (first: number, data: Buffer): void => {
    for (let i = 0; i < step; i++) {
      const b = first + i;
      const got = data.subarray(i * BLOCK, (i + 1) * BLOCK);
      const allowed = exact ? [exact[b]] : ledger.candidates(b);
      const hit = allowed.find((g) => got.equals(pattern(g, b)));
      if (hit !== undefined) gens[b] = hit;
      else if (bad.length < 10) bad.push(`block ${b}: holds ${got.readUInt32LE(0)}/${got.readUInt32LE(4)} (block/gen), allowed gens ${allowed.join(',')}`);
    }
  };
  // Eight reads in flight at a time.
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < ledger.blocks) {
      const first = next;
      next += step;
      check(first, await c.read(first * BLOCK, step * BLOCK));
    }
  }));
  await c.disconnect();
  return { gens, bad };
}

t.test('SIGKILL during writes: every write acknowledged before a completed flush survives', async (tt) => {
  const arr = await createArray({ dir: tempDir(tt, 'nbdraid-raid-crash-'), name: 'crash', memberSize: '65M' });
  let server = await serveArray(tt, arr);
  const conns = await Promise.all([0, 1].map(() => NbdClient.connect({ host: '127.0.0.1', port: server.ports[0], exportName: 'crash' })));
  const ledger = new Ledger(conns[0].size / BLOCK);
  const st: WriteState = { inFlight: 0, killing: false, unexpected: [] };
  const writing = writeRounds(conns, ledger, st);
  const deadline = Date.now() + WRITE_PHASE_MS - 2000;
  while ((ledger.rounds < MIN_ROUNDS || st.inFlight === 0) && st.unexpected.length === 0 && Date.now() < deadline) await sleep(5);
  await sleep(Math.random() * 50); // a random kill point, not a synchronisation
  const inFlightAtKill = st.inFlight;
  st.killing = true;
  await server.kill();
  await withDeadline(writing, 60_000, 'the writers stopping after the kill');
  for (const c of conns) c.close();
  tt.same(st.unexpected.map(String), [], 'no request failed except by the kill, and none before it');
  tt.ok(ledger.rounds >= MIN_ROUNDS, `${ledger.rounds} rounds flushed before the kill`);
  tt.ok(inFlightAtKill > 0 || ledger.pending.size > 0, `killed with writes in flight (${inFlightAtKill} requests, ${ledger.pending.size} blocks since the last flush)`);

  const lastTask = await lastTaskId(arr);
  server = await serveArray(tt, arr);
  const first = await readBack(server, ledger);
  tt.same(first.bad, [], 'every block holds its durable content or that of a write since the last flush');
  const durable = ledger.durable.reduce((n, g) => n + (g > 0 ? 1 : 0), 0);
  tt.ok(durable > 1000, `${durable} durable written blocks checked`);

  const resync = await waitTask(arr, 'resync', lastTask, 60_000);
  tt.equal(resync.task.state, 'DONE', "the dead controller's dirty regions were resynced");
  const check = await arr.json<{ state: string; result: { mismatches: number } }>('check', arr.name);
  tt.same([check.state, check.result.mismatches], ['DONE', 0], 'check finds parity right on every stripe');

  await arr.cli('fail', arr.name, '--member', '2');
  const degraded = await readBack(server, ledger, first.gens);
  tt.same(degraded.bad, [], 'with member 2 failed every block reads back the same (reconstructed)');
});
