// `nbdraid serve NAME --metrics HOST:PORT` against a real controller process: the request
// counters, bytes and latency histogram count what a real NBD client sent (errors apart); during
// a rebuild started by `nbdraid fail`, two scrapes show the task's progress moving forward and the
// degraded flag set, this controller's background bytes (4 survivors read per chunk written) and
// its coordination commits growing; after it, the flag is clear, the task's series are gone and
// the bytes written equal the task's. Lease waits are timed for clients and background work.
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { MiB, createArray, startController, waitTaskEnd } from '../helpers/cluster.js';
import { waitUntil, withDeadline } from '../helpers/deadline.js';
import { freePort, freePorts } from '../../harness/free-port.js';
import { tempDir } from '../helpers/temp-dir.js';
import { killGroup } from '../../harness/run-tool.js';
import { nbdraidCli } from '../../harness/server-process.js';
import { spawnServer } from '../../harness/spawn-ready.js';
import { controllerArgs } from '../../cmd/verbs/cluster.js';
import { NbdClient } from '../../lib/transport/client.js';

const MEMBER = 64 * MiB;
const FAILED = 2;

/** GET http://127.0.0.1:PORT/PATH: status and body, within a deadline. */
function get(port: number, path = '/metrics'): Promise<{ status: number; type: string; body: string }> {
  return withDeadline(new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    }).on('error', reject);
  }), 10_000, `GET ${path}`);
}

type Samples = Map<string, number>;

/** Prometheus text format to 'name{a="x",b="y"}' -> value, labels sorted by name. */
function parse(text: string): Samples {
  const out: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((l) => `${l[1]}="${l[2]}"`).sort();
    out.set(`${m[1]}{${labels.join(',')}}`, Number(m[3]));
  }
  return out;
}

async function scrape(port: number): Promise<Samples> {
  const res = await get(port);
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status} ${res.body}`);
  return parse(res.body);
}

/** The sample `name` with `labels` (the array label added), or undefined. */
function val(s: Samples, name: string, labels: Record<string, string> = {}): number | undefined {
  const all = { array: 'vol', ...labels };
  const key = Object.keys(all).sort().map((k) => `${k}="${all[k as keyof typeof all]}"`).join(',');
  return s.get(`${name}{${key}}`);
}

/** This controller's background rebuild bytes. */
function background(s: Samples): { read: number; written: number } {
  const of = (direction: string) => val(s, 'nbdraid_background_bytes_total', { kind: 'rebuild', direction }) ?? 0;
  return { read: of('read'), written: of('written') };
}

/** The (task, value) of the one task series of `name`, if any. */
function taskSeries(s: Samples, name: string): { task: string; value: number }[] {
  return [...s].filter(([k]) => k.startsWith(`${name}{`)).map(([k, value]) => ({ task: /task="(\d+)"/.exec(k)?.[1] ?? '?', value }));
}

t.test('metrics count NBD requests and follow a rebuild', async (tt) => {
  const arr = await createArray(tempDir(tt), { memberSize: MEMBER, spare: true });
  // Slow enough that the rebuild's 8 partitions finish one by one while we scrape.
  await arr.cli(['throttle', arr.name, '--min', '6', '--max', '6']);
  const mport = await freePort();
  const ctl = await startController(tt, arr, ['--metrics', `127.0.0.1:${mport}`]);
  const said = `metrics on http://127.0.0.1:${mport}/metrics`;
  tt.ok(await waitUntil(() => ctl.stderr().includes(said), 10_000, 'the metrics address to be printed'), 'the controller says where its metrics are');

  const notFound = await get(mport, '/');
  tt.equal(notFound.status, 404, 'only /metrics is served');
  const first = await get(mport);
  tt.match(first.type, /^text\/plain; version=0\.0\.4/, 'Prometheus text format');
  const s0 = parse(first.body);
  tt.equal(val(s0, 'nbdraid_array_degraded'), 0, 'an optimal array is not degraded');
  tt.equal(val(s0, 'nbdraid_array_slots', { state: 'active' }), 5, 'five active slots');
  tt.equal(val(s0, 'nbdraid_nbd_connections_total'), 0, 'no connection yet');

  // Known traffic: 3 writes of 64 KiB, 5 reads of 4 KiB, 1 flush, 1 read past the end (an error).
  const c = await NbdClient.connect({ host: '127.0.0.1', port: ctl.port, exportName: arr.name });
  for (let i = 0; i < 3; i++) await c.write(i * 65536, Buffer.alloc(65536, i + 1));
  for (let i = 0; i < 5; i++) await c.read(i * 4096, 4096);
  await c.flush();
  const during = await scrape(mport);
  tt.equal(val(during, 'nbdraid_nbd_connections'), 1, 'one connection open while the client is connected');
  await tt.rejects(c.read(c.size, 4096), 'a read past the end is refused');
  await c.disconnect();

  const s1 = await waitUntil(async () => {
    const s = await scrape(mport);
    return val(s, 'nbdraid_nbd_connections') === 0 ? s : undefined;
  }, 10_000, 'the connection to close', 50);
  tt.equal(val(s1, 'nbdraid_nbd_requests_total', { command: 'write', result: 'ok' }), 3, '3 writes counted');
  tt.equal(val(s1, 'nbdraid_nbd_requests_total', { command: 'read', result: 'ok' }), 5, '5 reads counted');
  tt.equal(val(s1, 'nbdraid_nbd_requests_total', { command: 'read', result: 'error' }), 1, 'the refused read counted as an error');
  tt.equal(val(s1, 'nbdraid_nbd_requests_total', { command: 'flush', result: 'ok' }), 1, '1 flush counted');
  tt.equal(val(s1, 'nbdraid_nbd_request_bytes_total', { command: 'write' }), 3 * 65536, 'write bytes');
  tt.equal(val(s1, 'nbdraid_nbd_request_bytes_total', { command: 'read' }), 5 * 4096 + 4096, 'read bytes (the refused one included)');
  tt.equal(val(s1, 'nbdraid_nbd_request_duration_seconds_count', { command: 'write' }), 3, 'write latency histogram holds 3');
  tt.equal(val(s1, 'nbdraid_nbd_request_duration_seconds_bucket', { command: 'write', le: '+Inf' }), 3, 'all 3 in the +Inf bucket');
  tt.ok((val(s1, 'nbdraid_nbd_request_duration_seconds_sum', { command: 'write' }) ?? 0) > 0, 'write latency sum is positive');
  tt.equal(val(s1, 'nbdraid_nbd_connections_total'), 1, 'one connection accepted');
  tt.ok((val(s1, 'nbdraid_lease_events_total', { kind: 'granted' }) ?? 0) >= 1, 'the I/O took region leases');
  tt.equal(val(s1, 'nbdraid_throttle_min_mbps'), 6, 'the throttle floor is reported');
  tt.ok((val(s1, 'nbdraid_lease_wait_seconds_count', { by: 'client' }) ?? 0) >= 1, 'the first writes waited for their leases, and were timed');
  // Heartbeats run every 250 ms from the controller's start: a fast client can be done before the
  // first one after the metrics were attached, so the count is waited for.
  const beats = await waitUntil(async () => {
    const n = val(await scrape(mport), 'nbdraid_coordination_commit_duration_seconds_count', { op: 'heartbeat', result: 'ok' }) ?? 0;
    return n >= 1 ? n : undefined;
  }, 10_000, 'a heartbeat to be timed', 100).catch(() => 0);
  tt.ok(beats >= 1, 'heartbeats are timed as coordination commits');
  tt.same(background(s1), { read: 0, written: 0 }, 'no background bytes before any task');
  for (let slot = 0; slot < 5; slot++) tt.equal(val(s1, 'nbdraid_member_io_errors_total', { slot: String(slot) }), 0, `slot ${slot}: no member I/O error`);
  const eventsBefore = val(s1, 'nbdraid_array_events') ?? 0;

  await arr.cli(['fail', arr.name, '--member', String(FAILED)]);
  // Two scrapes while it runs, the second with more stripes done than the first.
  const a = await waitUntil(async () => {
    const s = await scrape(mport);
    const done = taskSeries(s, 'nbdraid_task_stripes_done');
    return done.length === 1 && done[0].value > 0 ? { s, done: done[0] } : undefined;
  }, 60_000, 'a scrape showing rebuild progress', 100);
  const b = await waitUntil(async () => {
    const s = await scrape(mport);
    const done = taskSeries(s, 'nbdraid_task_stripes_done');
    return done.length === 1 && done[0].value > a.done.value ? { s, done: done[0] } : undefined;
  }, 60_000, 'a later scrape showing more rebuild progress', 100);
  for (const [when, x] of [['first', a], ['second', b]] as const) {
    const total = taskSeries(x.s, 'nbdraid_task_stripes_total')[0];
    tt.ok(x.done.value < total.value, `${when} scrape: mid-rebuild (${x.done.value}/${total.value} stripes)`);
    tt.equal(val(x.s, 'nbdraid_array_degraded'), 1, `${when} scrape: degraded`);
    tt.equal(val(x.s, 'nbdraid_array_state', { state: 'degraded' }), 1, `${when} scrape: state degraded`);
    tt.equal(val(x.s, 'nbdraid_array_slots', { state: 'rebuilding' }), 1, `${when} scrape: one slot rebuilding`);
    tt.equal(val(x.s, 'nbdraid_task_partitions', { task: x.done.task, kind: 'rebuild', state: 'FAILED' }), 0, `${when} scrape: no failed partition`);
  }
  tt.equal(a.done.task, b.done.task, 'both scrapes saw the same task');
  tt.equal(val(b.s, 'nbdraid_member_failures_total', { slot: String(FAILED) }), 1, 'the failed member is counted once');
  tt.ok(b.done.value > a.done.value, `progress moved forward (${a.done.value} -> ${b.done.value} stripes)`);
  const bytesA = taskSeries(a.s, 'nbdraid_task_bytes')[0].value;
  const bytesB = taskSeries(b.s, 'nbdraid_task_bytes')[0].value;
  tt.ok(bytesB > bytesA, `task bytes moved forward (${bytesA} -> ${bytesB})`);
  const [bgA, bgB] = [background(a.s), background(b.s)];
  tt.ok(bgB.written > bgA.written && bgA.written > 0, `this controller's rebuild writes grew (${bgA.written} -> ${bgB.written} bytes)`);
  tt.ok(bgB.written >= bytesB, 'and are at least what its checkpoints recorded');
  for (const x of [bgA, bgB]) tt.equal(x.read, 4 * x.written, 'the rebuild read 4 survivors per chunk written');
  const commits = (x: Samples) => val(x, 'nbdraid_coordination_commit_duration_seconds_count', { op: 'checkpoint', result: 'ok' }) ?? 0;
  tt.ok(commits(b.s) > commits(a.s), `checkpoint commits were timed as the rebuild went on (${commits(a.s)} -> ${commits(b.s)})`);
  tt.ok((val(b.s, 'nbdraid_lease_wait_seconds_count', { by: 'background' }) ?? 0) >= 1, 'the rebuild waited for region leases, and was timed');

  const end = await waitTaskEnd(arr, 'rebuild', 120_000);
  tt.equal(end.task.state, 'DONE', 'the rebuild completes');
  const after = await waitUntil(async () => {
    const s = await scrape(mport);
    return val(s, 'nbdraid_array_degraded') === 0 ? s : undefined;
  }, 30_000, 'the degraded flag to clear', 100);
  tt.equal(background(after).written, (end as unknown as { bytes: number }).bytes, 'the one controller wrote every byte the task records');
  tt.equal(val(after, 'nbdraid_array_state', { state: 'optimal' }), 1, 'optimal after the rebuild');
  tt.equal(val(after, 'nbdraid_array_slots', { state: 'active' }), 5, 'five active slots again');
  tt.equal(val(after, 'nbdraid_tasks_active'), 0, 'no task active');
  tt.same(taskSeries(after, 'nbdraid_task_stripes_done'), [], 'the finished task has no progress series');
  tt.ok((val(after, 'nbdraid_array_events') ?? 0) > eventsBefore, 'the events counter moved with the failure and the rebuild');
  tt.equal(val(after, 'nbdraid_nbd_requests_total', { command: 'write', result: 'ok' }), 3, 'request counters unchanged by background work');
});

t.test('a bad or busy --metrics address is refused with a clear error', async (tt) => {
  const arr = await createArray(tempDir(tt), { memberSize: 16 * MiB });
  const bad = await arr.cli(['serve', arr.name, '--metrics', 'nowhere'], { allowFailure: true });
  tt.not(bad.code, 0, 'a malformed address fails');
  tt.match(bad.stderr, /--metrics nowhere: expected HOST:PORT/, 'and says what it expects');
  tt.notMatch(bad.stderr, /\n\s+at /, 'without a stack trace');
  const holder = http.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  tt.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
  const port = (holder.address() as { port: number }).port;
  const nbd = await freePort();
  const busy = await arr.cli(['serve', arr.name, '--listen', `127.0.0.1:${nbd}`, '--metrics', `127.0.0.1:${port}`], { allowFailure: true, timeoutMs: 30_000 });
  tt.not(busy.code, 0, 'a busy metrics address fails the start');
  tt.match(busy.stderr, new RegExp(`--metrics 127\\.0\\.0\\.1:${port}: .*choose another address`), 'and says so');
});

t.test('cluster gives controller i the metrics port PORT+i', async (tt) => {
  const args = { state: '/s', name: 'md0', controllers: 3, force: false, metrics: '127.0.0.1:9100' };
  tt.same(controllerArgs(args, 0), ['--state', '/s', 'serve', 'md0', '--listen', '127.0.0.1:10809', '--metrics', '127.0.0.1:9100']);
  tt.same(controllerArgs(args, 2), ['--state', '/s', 'serve', 'md0', '--listen', '127.0.0.1:10811', '--metrics', '127.0.0.1:9102']);
  tt.same(controllerArgs({ ...args, metrics: '[::1]:9100' }, 1).slice(-2), ['--metrics', '[::1]:9101'], 'IPv6 hosts keep their brackets');
});

t.test('nbdraid cluster --metrics: each controller on its own port', async (tt) => {
  const dir = tempDir(tt);
  const arr = await createArray(dir, { memberSize: 16 * MiB });
  const [base] = await freePorts(2);
  const { child, stderr, exited } = spawnServer(process.execPath, [nbdraidCli, '--state', arr.state, 'cluster', arr.name,
    '--controllers', '2', '--socket', path.join(dir, 'nbd.sock'), '--metrics', `127.0.0.1:${base}`]);
  tt.teardown(async () => {
    killGroup(child.pid, 'SIGTERM');
    await withDeadline(exited, 20_000, 'the cluster to stop').catch(() => killGroup(child.pid, 'SIGKILL'));
    if (!tt.passing()) tt.comment(stderr());
  });
  const scrapeWhenUp = (port: number) => waitUntil(async () => {
    const s = await scrape(port).catch(() => undefined);
    // Up means the controller's id and its array's slots are both shown (a scrape may race the start).
    return s && val(s, 'nbdraid_controller_id') !== undefined && val(s, 'nbdraid_array_slots', { state: 'active' }) !== undefined ? s : undefined;
  }, 30_000, `controller metrics on port ${port}`, 100);
  const [s0, s1] = await Promise.all([scrapeWhenUp(base), scrapeWhenUp(base + 1)]);
  tt.not(val(s0, 'nbdraid_controller_id'), val(s1, 'nbdraid_controller_id'), 'two controllers answer, one per port');
  for (const s of [s0, s1]) tt.equal(val(s, 'nbdraid_array_slots', { state: 'active' }), 5, 'each reports the array');
});
