// `npm run bench -- rebuild`: a 4+1 RAID-5 array (512 KiB chunk, members of 1 GiB of data after
// the 1 MiB data offset), 1.5 GiB of data written first through NBD. With 1, 2 and 3 controllers
// (`nbdraid cluster`, background throttle unlimited): a member is failed, a spare added, and the
// rebuild timed from its task's createdAt to finishedAt; then `nbdraid check` timed the same way.
// Beside them: the physical limit (fio reading the four survivors and writing one member file at
// once, same files, same disk), btrfs raid5 `replace` and `scrub` on loop devices of the same size
// holding the same amount of data, and 4 KiB random-read p99 latency during a throttled rebuild
// against idle (one controller), and the CPU seconds per GiB rebuilt (controller processes) against
// fio's own CPU for the physical-limit copy of the same bytes. Prints tables with the goals, writes
// JSON under bench-results/, and an SVG chart of the throttled rebuild over time: its MB/s (task progress sampled every
// second) above the client's 4 KiB random-read p99 per second (from fio's completion latency log).
// Environment: BENCH_RUNTIME (seconds of each latency run, default 10), BENCH_REBUILD_GIB (data
// per member in GiB, default 1; smaller for a quick run of every step), BENCH_REBUILD_QUICK=1 (only
// three one-controller rebuilds and checks, for comparing settings such as NBDRAID_DIRECT_IO),
// BENCH_REMOTE_ROUNDS (rounds of the remote-member comparison, default 3), BENCH_REBUILD_REMOTE=only
// (only that comparison). The comparison (_rebuild-remote.ts): the same one-controller rebuild with
// members behind nbdkit file servers on loopback TCP against members that are local files.
import fs from 'node:fs';
import path from 'node:path';
import { TaskStore, openDatabase } from '../../lib/coordination/index.js';
import { runFio } from '../../harness/fio.js';
import { clusterArray, createArray, lastTaskId, serveArray, tasksOf, waitTask, type TestArray } from '../../harness/raid-array.js';
import { runTool } from '../../harness/run-tool.js';
import { btrfsReference, type BtrfsResult } from './_btrfs.js';
import { type RemoteResult, remoteVsLocal } from './_rebuild-remote.js';
import { cpuSeconds, measure, saveResult, scratch, table, verdict } from './_common.js';
import { type Point, svgChart } from './_svg-chart.js';

const MIB = 2 ** 20;
export const DATA_PER_MEMBER = dataPerMember(process.env.BENCH_REBUILD_GIB ?? '1');
const DATA_OFFSET = MIB;
export const MEMBER_BYTES = DATA_PER_MEMBER + DATA_OFFSET;
const USABLE = 4 * DATA_PER_MEMBER;
/**
 * Data written before the rebuilds, and into btrfs: with more, btrfs raid5 on 1 GiB devices has no
 * unallocated space left and refuses `replace` with ENOSPC.
 */
export const FILL = (USABLE * 3) / 8;
const TASK_TIMEOUT_MS = 15 * 60_000;
/** Controllers of each timed rebuild, in order. */
const QUICK = process.env.BENCH_REBUILD_QUICK === '1';
const RUNS = QUICK ? [1, 1, 1] : [1, 1, 2, 3];

interface RebuildRow { controllers: number; first: boolean; rebuildSeconds: number; rebuildMBps: number; cpuPerGiB: number; checkSeconds: number; checkMBps: number; mismatches: number }

/** BENCH_REBUILD_GIB as bytes (whole MiB). */
function dataPerMember(gib: string): number {
  const mib = Math.round(Number(gib) * 1024);
  if (!Number.isFinite(mib) || mib < 16) throw new Error(`BENCH_REBUILD_GIB=${gib}: give the data per member in GiB, at least 1/64`);
  return mib * MIB;
}

/** Seconds since `t0` (performance.now()) and the task's bytes then. */
interface ProgressSample { at: number; bytes: number }

/** Samples task `taskId`'s bytes every second from the coordination database until stopped. */
function sampleProgress(arr: TestArray, taskId: number, t0: number): { stop(): ProgressSample[] } {
  const db = openDatabase(arr.state);
  const store = new TaskStore(db, { actor: 'cli' });
  const samples: ProgressSample[] = [];
  const take = () => samples.push({ at: (performance.now() - t0) / 1000, bytes: store.progress(taskId).bytes });
  take();
  const timer = setInterval(take, 1000);
  return {
    stop: () => {
      clearInterval(timer);
      take();
      db.close();
      return samples;
    },
  };
}

/** MB/s between consecutive samples, at the middle of each interval. */
function rates(samples: ProgressSample[]): Point[] {
  return samples.slice(1).map((s, i) => [(s.at + samples[i].at) / 2, mbps(s.bytes - samples[i].bytes, s.at - samples[i].at)]);
}

/** p99 of fio's completion latencies (log lines `ms, ns, dir, bs`) per whole second, in ms, at each second's middle. */
function p99PerSecond(logFile: string): Point[] {
  const bySecond = new Map<number, number[]>();
  for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
    const [ms, ns] = line.split(',').map(Number);
    if (!Number.isFinite(ms) || !Number.isFinite(ns)) continue;
    const sec = Math.floor(ms / 1000);
    let v = bySecond.get(sec);
    if (!v) bySecond.set(sec, (v = []));
    v.push(ns);
  }
  // A second with fewer than 100 completions (the run's last, cut short) has no p99 to speak of.
  return [...bySecond].filter(([, v]) => v.length >= 100).sort(([a], [b]) => a - b).map(([sec, v]) => {
    v.sort((a, b) => a - b);
    return [sec + 0.5, v[Math.min(v.length - 1, Math.ceil(v.length * 0.99) - 1)] / 1e6];
  });
}

const seconds = (t: { task: { createdAt: number; finishedAt: number | null } }) => ((t.task.finishedAt ?? NaN) - t.task.createdAt) / 1000;
const mbps = (bytes: number, s: number) => bytes / 1e6 / s;

/** Writes back dirty pages first, so no run pays for the previous one's writeback. */
async function settle(): Promise<void> {
  await runTool('sync', []);
}

/**
 * Fails `slot`, adds a spare (a file created at `size` when missing; no size for a member server's
 * URI), waits for the automatic rebuild; returns the finished task.
 */
export async function rebuildOnce(arr: TestArray, slot: number, spare: string, size: number | undefined = MEMBER_BYTES) {
  const before = await lastTaskId(arr);
  await arr.cli('fail', arr.name, '--member', String(slot));
  await arr.cli('add-spare', arr.name, spare, ...(size === undefined ? [] : ['--size', String(size)]));
  const t = await waitTask(arr, 'rebuild', before, TASK_TIMEOUT_MS, 1000); // timed by the task record; a poll is a CLI process, so poll seldom
  if (t.task.state !== 'DONE') throw new Error(`rebuild task ${t.task.id} ended ${t.task.state}: ${t.task.reason}`);
  return t;
}

async function checkOnce(arr: TestArray) {
  const before = await lastTaskId(arr);
  const r = await arr.json<{ state: string; result: { mismatches: number } }>('check', arr.name);
  const t = await waitTask(arr, 'check', before, TASK_TIMEOUT_MS, 100);
  return { seconds: seconds(t), mismatches: r.state === 'DONE' ? r.result.mismatches : NaN };
}

/** Slot -> member path of the array's active members. */
async function activeMembers(arr: TestArray): Promise<Map<number, string>> {
  const st = await arr.json<{ members: { path: string; slot: number | null; state: string }[] }>('status', arr.name);
  return new Map(st.members.filter((m) => m.state === 'active' && m.slot !== null).map((m) => [m.slot as number, m.path]));
}

/** The physical limit's seconds, and fio's CPU seconds per GiB written (the same bytes as a rebuild moves). */
async function physicalLimit(arr: TestArray, work: string, failedSlot: number): Promise<{ seconds: number; cpuPerGiB: number }> {
  const members = await activeMembers(arr);
  const survivors = [...members].filter(([s]) => s !== failedSlot).map(([, p]) => p);
  const target = path.join(work, 'limit-target');
  fs.writeFileSync(target, '');
  fs.truncateSync(target, MEMBER_BYTES);
  const env = { S0: survivors[0], S1: survivors[1], S2: survivors[2], S3: survivors[3], TARGET: target, DATA_OFFSET: String(DATA_OFFSET), DATA_SIZE: String(DATA_PER_MEMBER) };
  await settle();
  const t0 = performance.now();
  const r = await runFio({ jobFile: 'rebuild-limit.fio', env, timeoutMs: 600_000 });
  const s = (performance.now() - t0) / 1000;
  fs.rmSync(target);
  const cpu = r.jobs.reduce((sum, j) => sum + (((j.usr_cpu ?? NaN) + (j.sys_cpu ?? NaN)) / 100) * ((j.job_runtime ?? NaN) / 1000), 0);
  return { seconds: s, cpuPerGiB: cpu / (DATA_PER_MEMBER / 2 ** 30) };
}

/**
 * 4 KiB random reads at QD4 on controller 0 for `runtime` s: the p99 completion latency in us.
 * fio logs each completion latency to LATLOG_clat.1.log.
 */
async function randReadP99(uri: string, runtime: number, latLog: string): Promise<{ p99: number; iops: number }> {
  const env = { NBD_URI: uri, FIO_SIZE: String(USABLE), FIO_RUNTIME: String(runtime), FIO_LAT_LOG: latLog };
  const r = await runFio({ jobFile: 'rebuild-latency.fio', env, timeoutMs: (runtime + 120) * 1000 });
  const m = measure(r.jobs[0].read);
  return { p99: m.p99LatencyUs, iops: m.iops };
}

async function latencyUnderRebuild(arr: TestArray, runtime: number, spare: string, work: string) {
  const ctl = await serveArray(null, arr);
  try {
    const idle = await randReadP99(ctl.uri(), runtime, path.join(work, 'lat-idle'));
    await arr.cli('throttle', arr.name, '--min', '20', '--max', '0', '--inflight', '2');
    const before = await lastTaskId(arr);
    await arr.cli('fail', arr.name, '--member', '0');
    await arr.cli('add-spare', arr.name, spare, '--size', String(MEMBER_BYTES));
    for (let i = 0; i < 100 && !(await tasksOf(arr)).some((t) => t.task.kind === 'rebuild' && t.task.id > before && t.bytes > 0); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const started = (await tasksOf(arr)).find((t) => t.task.kind === 'rebuild' && t.task.id > before);
    const t0 = performance.now();
    const sampler = started ? sampleProgress(arr, started.task.id, t0) : undefined;
    const busyLog = path.join(work, 'lat-busy');
    let progress: ProgressSample[] = [];
    let busy: Awaited<ReturnType<typeof randReadP99>>;
    try {
      busy = await randReadP99(ctl.uri(), runtime, busyLog);
    } finally {
      progress = sampler?.stop() ?? [];
    }
    const task = (await tasksOf(arr)).find((t) => t.task.kind === 'rebuild' && t.task.id > before);
    const during = task ? `rebuild ${task.task.state}, ${(task.bytes / MIB).toFixed(0)} MiB done` : 'no rebuild task seen';
    const timeline = { rebuildMBps: rates(progress), readP99Ms: p99PerSecond(`${busyLog}_clat.1.log`) };
    return { idle, busy, during, throttle: { minMBps: 20, maxMBps: 0, inflight: 2 }, timeline };
  } finally {
    await ctl.stop();
  }
}

function rebuildTable(rows: RebuildRow[], limitMBps: number, limitCpuPerGiB: number, btrfs: BtrfsResult): string {
  const body = rows.map((r) => [
    `nbdraid, ${r.controllers} controller${r.controllers > 1 ? 's' : ''}${r.first ? ' (first run)' : ''}`, r.rebuildSeconds.toFixed(2), r.rebuildMBps.toFixed(0),
    `${((r.rebuildMBps / limitMBps) * 100).toFixed(0)}%`, r.cpuPerGiB.toFixed(2), r.checkSeconds.toFixed(2), r.checkMBps.toFixed(0), String(r.mismatches),
  ]);
  body.push(['physical limit (fio: read 4 survivors + write 1)', (DATA_PER_MEMBER / 1e6 / limitMBps).toFixed(2), limitMBps.toFixed(0), '100%', limitCpuPerGiB.toFixed(2), '', '', '']);
  if (btrfs.skipped) body.push(['btrfs raid5: skipped (see below)', '', '', '', '', '', '', '']);
  else {
    const rs = btrfs.replaceSeconds as number;
    const ss = btrfs.scrubSeconds as number;
    body.push(['btrfs raid5 replace / scrub', rs.toFixed(2), mbps(btrfs.replacedBytes ?? NaN, rs).toFixed(0),
      `${((mbps(btrfs.replacedBytes ?? NaN, rs) / limitMBps) * 100).toFixed(0)}%`, '', ss.toFixed(2), mbps(btrfs.dataBytes as number, ss).toFixed(0), '']);
  }
  return table(['', 'rebuild s', 'MB/s', 'of limit', 'CPU s/GiB', 'check/scrub s', 'MB/s', 'mismatches'], body);
}

const REMOTE_GOAL = 0.5;

function remoteTable(r: RemoteResult): string {
  const body = r.rounds.map((x) => [`round ${x.round}, ${x.side} members (${x.order === 1 ? 'first' : 'second'})`, x.seconds.toFixed(2), x.mbps.toFixed(0)]);
  body.push(['median, local files', '', r.localMedianMBps.toFixed(0)], ['median, nbdkit members on loopback TCP', '', r.remoteMedianMBps.toFixed(0)]);
  return table(['one controller, 4+1', 'rebuild s', 'MB/s'], body);
}

function remoteGoal(r: RemoteResult): string[] {
  return ['remote-member rebuild / local (medians of ' + String(r.rounds.length / 2) + ' rounds)', r.ratio.toFixed(2), `>= ${REMOTE_GOAL}`, verdict(r.ratio, REMOTE_GOAL)];
}

async function remoteComparison(work: string): Promise<RemoteResult> {
  const rounds = Number(process.env.BENCH_REMOTE_ROUNDS ?? 3);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`BENCH_REMOTE_ROUNDS=${process.env.BENCH_REMOTE_ROUNDS}: give a whole number of rounds, at least 1`);
  console.log(`remote members: the same rebuild with nbdkit member servers on loopback TCP against local files, ${rounds} alternating rounds...`);
  const dir = fs.mkdtempSync(path.join(work, 'cmp-'));
  try {
    return await remoteVsLocal(dir, { memberBytes: MEMBER_BYTES, dataPerMember: DATA_PER_MEMBER, fill: FILL, rounds, rebuild: rebuildOnce });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function remoteOnly(work: string): Promise<void> {
  const r = await remoteComparison(work);
  console.log(`\n${remoteTable(r)}\n\n${table(['goal', 'measured', 'target', ''], [remoteGoal(r)])}\n`);
  console.log(`results: ${await saveResult('rebuild-remote', { dataPerMember: DATA_PER_MEMBER, chunk: 512 << 10, remote: r })}`);
}

export async function run(): Promise<void> {
  const runtime = Number(process.env.BENCH_RUNTIME ?? 10);
  const work = scratch('nbdraid-bench-rebuild-');
  try {
    if (process.env.BENCH_REBUILD_REMOTE === 'only') {
      await remoteOnly(work);
      return;
    }
    const arr = await createArray({ dir: work, name: 'rb', memberSize: String(MEMBER_BYTES) });
    await arr.cli('throttle', arr.name, '--min', '50', '--max', '0', '--inflight', '8');
    console.log(`rebuild benchmark: 4+1 RAID-5, 512 KiB chunk, ${DATA_PER_MEMBER / MIB} MiB per member; writing ${FILL / MIB} MiB of data...`);
    const filler = await serveArray(null, arr);
    await runFio({ jobFile: 'raid-bench.fio', section: 'fill', env: { NBD_URI: filler.uri(), FIO_SIZE: String(FILL), FIO_RUNTIME: '0' }, timeoutMs: 600_000 });
    await filler.stop();

    const rows: RebuildRow[] = [];
    // One controller runs twice: the first rebuild after the fill is often much slower (page cache).
    for (const [i, n] of RUNS.entries()) {
      const cluster = await clusterArray(null, arr, n);
      try {
        const slot = [2, 3, 4, 1][i % 4];
        await settle();
        const cpu0 = cpuSeconds(cluster.pid);
        const rebuilt = await rebuildOnce(arr, slot, path.join(work, `spare${i}`));
        const cpuPerGiB = (cpuSeconds(cluster.pid) - cpu0) / (DATA_PER_MEMBER / 2 ** 30);
        const check = await checkOnce(arr);
        const rs = seconds(rebuilt);
        rows.push({ controllers: n, first: i === 0, rebuildSeconds: rs, rebuildMBps: mbps(DATA_PER_MEMBER, rs), cpuPerGiB, checkSeconds: check.seconds, checkMBps: mbps(USABLE, check.seconds), mismatches: check.mismatches });
        console.log(`  ${n} controller(s): rebuild ${rs.toFixed(2)} s (${mbps(DATA_PER_MEMBER, rs).toFixed(0)} MB/s), check ${check.seconds.toFixed(2)} s, ${check.mismatches} mismatches`);
      } finally {
        await cluster.stop();
      }
    }
    if (QUICK) {
      console.log(`\n${table(['run', 'rebuild s', 'MB/s', 'CPU s/GiB', 'check s', 'check MB/s'], rows.map((r, i) => [String(i + 1), r.rebuildSeconds.toFixed(2), r.rebuildMBps.toFixed(0), r.cpuPerGiB.toFixed(2), r.checkSeconds.toFixed(2), r.checkMBps.toFixed(0)]))}\n`);
      console.log(`results: ${await saveResult('rebuild-quick', { dataPerMember: DATA_PER_MEMBER, directIo: process.env.NBDRAID_DIRECT_IO ?? 'on', rows })}`);
      return;
    }
    const limits = [await physicalLimit(arr, work, 0), await physicalLimit(arr, work, 0)];
    const limitSeconds = Math.min(...limits.map((l) => l.seconds)); // best of two
    const limitCpuPerGiB = Math.min(...limits.map((l) => l.cpuPerGiB));
    const limitMBps = mbps(DATA_PER_MEMBER, limitSeconds);
    console.log(`  physical limit: ${limitSeconds.toFixed(2)} s (${limitMBps.toFixed(0)} MB/s)`);
    const lat = await latencyUnderRebuild(arr, runtime, path.join(work, 'spare-lat'), work);
    console.log(`  4 KiB rand read p99: idle ${lat.idle.p99.toFixed(0)} us, during throttled rebuild ${lat.busy.p99.toFixed(0)} us (${lat.during})`);
    const remote = await remoteComparison(work);
    for (const f of fs.readdirSync(work).filter((f) => /^(m\d|spare)/.test(f))) fs.rmSync(path.join(work, f)); // room for btrfs
    await settle();
    const btrfs = await btrfsReference(work, MEMBER_BYTES, FILL);
    console.log(`  btrfs: ${btrfs.skipped ?? `replace ${btrfs.replaceSeconds?.toFixed(2)} s (${btrfs.mode}), scrub ${btrfs.scrubSeconds?.toFixed(2)} s`}`);

    const one = Math.max(...rows.filter((r) => r.controllers === 1).map((r) => r.rebuildMBps));
    const two = rows.find((r) => r.controllers === 2)?.rebuildMBps ?? NaN;
    const best = Math.max(...rows.map((r) => r.rebuildMBps));
    const oneCpu = Math.min(...rows.filter((r) => r.controllers === 1).map((r) => r.cpuPerGiB));
    const goals = [
      ['2 controllers vs 1 (rebuild rate, best 1-controller run)', (two / one).toFixed(2), '>= 1.6', verdict(two / one, 1.6)],
      ['rebuild time vs btrfs replace (btrfs s / nbdraid s, best)', btrfs.skipped ? 'skipped' : ((btrfs.replaceSeconds as number) / Math.min(...rows.map((r) => r.rebuildSeconds))).toFixed(2), '> 1.0',
        btrfs.skipped ? '' : verdict((btrfs.replaceSeconds as number) / Math.min(...rows.map((r) => r.rebuildSeconds)), 1.0001)],
      ['rebuild rate vs physical limit (best)', (best / limitMBps).toFixed(2), '>= 0.70', verdict(best / limitMBps, 0.7)],
      ['CPU s per GiB rebuilt (1 controller, best) / fio copy of the same bytes', `${(oneCpu / limitCpuPerGiB).toFixed(2)} (${oneCpu.toFixed(2)} / ${limitCpuPerGiB.toFixed(2)})`, '<= 1.5',
        oneCpu / limitCpuPerGiB <= 1.5 ? 'met' : 'MISSED'],
      ['4K rand read p99 during throttled rebuild / idle', (lat.busy.p99 / lat.idle.p99).toFixed(2), '<= 2.0', lat.busy.p99 / lat.idle.p99 <= 2 ? 'met' : 'MISSED'],
      remoteGoal(remote),
    ];
    console.log(`\n${rebuildTable(rows, limitMBps, limitCpuPerGiB, btrfs)}\n`);
    if (btrfs.skipped) console.log(`btrfs skipped: ${btrfs.skipped}\n`);
    else console.log(`btrfs replace: ${btrfs.mode}; it copies only allocated chunks (${((btrfs.replacedBytes ?? 0) / MIB).toFixed(0)} MiB of ${DATA_PER_MEMBER / MIB} MiB); nbdraid rebuilds the whole member\n`);
    console.log(`4 KiB random read, QD4, ${runtime} s: idle p99 ${lat.idle.p99.toFixed(0)} us (${lat.idle.iops.toFixed(0)} IOPS); during rebuild throttled to min 20 MB/s, 2 in flight: p99 ${lat.busy.p99.toFixed(0)} us (${lat.busy.iops.toFixed(0)} IOPS); ${lat.during}\n`);
    console.log(`${remoteTable(remote)}\n`);
    console.log(`${table(['goal', 'measured', 'target', ''], goals)}\n`);
    const results = await saveResult('rebuild', { dataPerMember: DATA_PER_MEMBER, chunk: 512 << 10, rows, limitSeconds, limitMBps, limitCpuPerGiB, btrfs, latency: lat, remote, goals });
    console.log(`results: ${results}`);
    const chart = results.replace(/\.json$/, '.svg');
    fs.writeFileSync(chart, svgChart({
      title: 'Rebuild under client load (one controller, throttle min 20 MB/s, 2 in flight)',
      subtitle: `4 KiB random reads, QD4; idle p99 ${(lat.idle.p99 / 1000).toFixed(2)} ms; ${DATA_PER_MEMBER / MIB} MiB per member; ${lat.during}`,
      xLabel: 'time since the client load began', xUnit: 's',
      panels: [
        { label: 'rebuild rate', unit: 'MB/s', points: lat.timeline.rebuildMBps },
        { label: 'client 4 KiB read p99', unit: 'ms', points: lat.timeline.readP99Ms },
      ],
    }));
    console.log(`chart: ${chart}`);
  } finally {
    await runTool('sync', []);
    fs.rmSync(work, { recursive: true, force: true });
  }
}
