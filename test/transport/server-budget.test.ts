// Limits no client can get around: 100 stalled 32 MiB writers against the real `nbdraid serve`
// process (resident memory stays under the payload budget plus a fixed overhead, and a normal
// client is still served), a partly received request dropped after the request timeout while an
// idle connection stays, and the connection cap's refusal.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { encodeRequest } from '../../lib/transport/codec-transmission.js';
import { NbdClient } from '../../lib/transport/client.js';
import * as C from '../../lib/transport/constants.js';
import { safeTeardown, trackGroup } from '../../harness/cleanup.js';
import { settled, waitUntil, withDeadline } from '../helpers/deadline.js';
import { killGroup } from '../../harness/run-tool.js';
import { memoryExport, startServer } from './fixtures.js';

const MiB = 1 << 20;
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cmd/nbdraid.js');
/** What a Node process serving over NBD holds besides payloads: code, heap, 100 connections' buffers. */
const FIXED_OVERHEAD = 192 * MiB;
const BUDGET = 256 * MiB;

function socketOf(c: NbdClient): net.Socket {
  return (c as unknown as { channel: { socket: net.Socket } }).channel.socket;
}

function residentBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** Starts `nbdraid serve --file` on a unix socket with `flags`; resolves at its ready line. */
async function serveProcess(t: Tap, flags: string[]): Promise<{ pid: number; sock: string; stderr: () => string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdraid-budget-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'disk.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, 4 * 1024 * MiB);
  const sock = path.join(dir, 'nbd.sock');
  const child = spawn(process.execPath, [CLI, 'serve', '--file', file, '--export', 'd', '--socket', sock, ...flags],
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  trackGroup(child);
  safeTeardown(t, `kill nbdraid serve (pid ${child.pid})`, () => {
    if (child.exitCode === null && child.signalCode === null) killGroup(child.pid, 'SIGKILL');
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  await waitUntil(() => err.includes('serving export') || child.exitCode !== null, 15_000, 'the ready line');
  if (!err.includes('serving export')) throw new Error(`nbdraid serve failed: ${err}`);
  return { pid: child.pid!, sock, stderr: () => err };
}

type Tap = { teardown(fn: () => unknown): void; comment(...a: unknown[]): void };

t.test('100 stalled 32 MiB writers: resident memory stays under the budget, a normal client is served', async (t) => {
  const srv = await serveProcess(t, ['--payload-budget', String(BUDGET), '--max-connections', '200', '--request-timeout', '600']);
  const before = residentBytes(srv.pid);
  const COUNT = 100;
  const stalled = await Promise.all(Array.from({ length: COUNT }, () => NbdClient.connect({ path: srv.sock, exportName: 'd' })));
  t.teardown(() => { for (const c of stalled) socketOf(c).destroy(); });
  const almost = Buffer.alloc(32 * MiB - 64 * 1024, 0x5a); // one buffer, referenced by every socket's queue
  stalled.forEach((c, i) => {
    const s = socketOf(c);
    s.write(encodeRequest({ type: C.CMD_WRITE, flags: 0, cookie: 1n, offset: i * 32 * MiB, length: 32 * MiB }, c.extended));
    s.write(almost);
  });
  // Until the server takes no more: the bytes still queued in the clients stop moving.
  await settled(() => stalled.reduce((n, c) => n + socketOf(c).writableLength, 0), 120_000, 'the writers stalling', 10, 100);
  const rss = await settled(() => Math.round(residentBytes(srv.pid) / MiB), 30_000, 'resident memory', 5, 100);
  t.comment(`resident ${Math.round(before / MiB)} MiB before, ${rss} MiB with ${COUNT} stalled writers`);
  t.ok(rss * MiB < BUDGET + FIXED_OVERHEAD, `resident ${rss} MiB under the budget ${BUDGET / MiB} MiB + ${FIXED_OVERHEAD / MiB} MiB`);
  const normal = await withDeadline(NbdClient.connect({ path: srv.sock, exportName: 'd' }), 10_000, 'a normal client connecting');
  const data = Buffer.alloc(4096, 0x33);
  await withDeadline(normal.write(4000 * MiB, data), 10_000, 'a small write of a normal client');
  t.ok((await withDeadline(normal.read(4000 * MiB, 4096), 10_000, 'a read of a normal client')).equals(data), 'a normal client is served');
  await normal.disconnect();
});

t.test('a request started and not finished within the request timeout drops the connection; idle ones stay', async (t) => {
  const logs: string[] = [];
  const { server, addr } = await startServer(t, [memoryExport('m')], { requestTimeoutMs: 300, log: (m) => logs.push(m), unix: true });
  const idle = await NbdClient.connect({ ...addr, exportName: 'm' });
  const trickler = await NbdClient.connect({ ...addr, exportName: 'm' });
  const header = encodeRequest({ type: C.CMD_WRITE, flags: 0, cookie: 9n, offset: 0, length: 4096 }, trickler.extended);
  const closed = new Promise<void>((r) => socketOf(trickler).once('close', () => r()));
  socketOf(trickler).write(header.subarray(0, 10)); // a header begun, never finished
  await withDeadline(closed, 10_000, 'the server dropping the trickler');
  t.match(logs.join('\n'), /dropped: request not received within 300 ms/);
  const payloadStaller = await NbdClient.connect({ ...addr, exportName: 'm' });
  const closed2 = new Promise<void>((r) => socketOf(payloadStaller).once('close', () => r()));
  socketOf(payloadStaller).write(Buffer.concat([header, Buffer.alloc(100)])); // payload begun, never finished
  await withDeadline(closed2, 10_000, 'the server dropping a stalled payload');
  // The idle connection saw both drops happen and is still served.
  await waitUntil(() => server.connectionCount === 1, 5_000, 'only the idle connection left');
  t.equal(server.stats.protocolErrors, 2, 'two connections dropped');
  t.equal((await idle.read(0, 512)).length, 512, 'the idle connection is still served');
  await idle.disconnect();
});

t.test('the connection cap refuses the connection beyond it, clearly, and admits again once one closes', async (t) => {
  const logs: string[] = [];
  const { server, addr } = await startServer(t, [memoryExport('m')], { maxConnections: 2, log: (m) => logs.push(m), unix: true });
  const a = await NbdClient.connect({ ...addr, exportName: 'm' });
  const b = await NbdClient.connect({ ...addr, exportName: 'm' });
  await t.rejects(NbdClient.connect({ ...addr, exportName: 'm' }), 'a third connection is refused');
  await waitUntil(() => logs.some((l) => /refused: 2 connections open, the most allowed \(--max-connections\)/.test(l)), 5_000, 'the refusal logged');
  t.equal(server.stats.refusedConnections, 1);
  await b.disconnect();
  await waitUntil(() => server.connectionCount === 1, 5_000, 'the second connection closed');
  const c = await NbdClient.connect({ ...addr, exportName: 'm' });
  t.equal((await c.read(0, 512)).length, 512, 'admitted again below the cap');
  await Promise.all([a.disconnect(), c.disconnect()]);
});

t.test('a payload waits while the budget is spent and goes on when the holder disconnects', async (t) => {
  const { server, addr } = await startServer(t, [memoryExport('m', 32 * MiB)], { payloadBudget: 8 * MiB, requestTimeoutMs: 0, unix: true });
  const holder = await NbdClient.connect({ ...addr, exportName: 'm' });
  const hs = socketOf(holder);
  hs.write(encodeRequest({ type: C.CMD_WRITE, flags: 0, cookie: 1n, offset: 0, length: 8 * MiB }, holder.extended));
  hs.write(Buffer.alloc(MiB));
  await waitUntil(() => server.budget.inUse === 8 * MiB, 5_000, 'the holder charged in full');
  const writer = await NbdClient.connect({ ...addr, exportName: 'm' });
  let done = false;
  const write = writer.write(16 * MiB, Buffer.alloc(4 * MiB, 7)).then(() => { done = true; });
  // The waiter is paused: the server stops reading it and charges nothing more.
  await settled(() => [socketOf(writer).writableLength > 0, server.budget.inUse, server.stats.requests], 10_000, 'the writer waiting');
  t.equal(done, false, 'the write waits while the budget is spent');
  t.equal(server.budget.inUse, 8 * MiB, 'nothing charged beyond the budget');
  hs.destroy();
  await withDeadline(write, 10_000, 'the write going on once the holder is gone');
  await waitUntil(() => server.budget.inUse === 0, 5_000, 'every byte given back');
  t.ok(server.budget.peakInUse <= 8 * MiB + 64 * 1024, `budget peak ${server.budget.peakInUse}`);
  t.ok((await writer.read(16 * MiB, 4 * MiB)).equals(Buffer.alloc(4 * MiB, 7)), 'the write landed');
  await writer.disconnect();
});
