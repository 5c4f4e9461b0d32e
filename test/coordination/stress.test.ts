// Four real controller processes share thousands of partitions while workers are SIGKILLed at
// random and restarted, the initiator among them, on each backend: 5,000 partitions on SQLite
// (a killed worker's flock frees its work at once), 1,000 on PostgreSQL (a killed worker's work
// passes on after T). An audit written outside the coordination tables proves exclusive
// ownership, completion of every partition, and one completion action by an adopter.
import t, { type Test } from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../../lib/coordination/db.js';
import { PgBackend } from '../../lib/coordination/pg/index.js';
import { toPartition, toTask, type PartitionRecord, type PartitionRow, type TaskRecord, type TaskRow } from '../../lib/coordination/records.js';
import { TaskStore } from '../../lib/coordination/tasks.js';
import { EventLog } from '../../lib/coordination/events.js';
import { auditViolations, parseAudit, type AuditLine } from '../helpers/coordination-audit.js';
import { killHard, sleep, spawnNode, within, type Child } from '../helpers/processes.js';
import { tempStateDir } from '../helpers/coordination.js';
import { postgresBin, startPostgres, type Postgres } from '../helpers/postgres.js';

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'workers', 'stress-worker.js');
const PROCESSES = 4;
const DEADLINE_MS = 120_000;
/** PostgreSQL's T for the workers (NBDRAID_TEST_DEAD_AFTER_MS): the least accepted. */
const DEAD_AFTER_MS = 1000;

/** One backend as the stress test reads it, besides what the workers are given. */
interface Side {
  name: string;
  where: string;
  partitions: number;
  randomKills: number;
  /** Milliseconds of each partition's work: several times a claim and a completion. */
  workMs: number;
  task(id: number): Promise<TaskRecord>;
  partitionsOf(id: number): Promise<PartitionRecord[]>;
  /** Kinds of the task's 'task.*' events, oldest first. */
  taskEvents(id: number): Promise<string[]>;
}

function sqliteSide(t: Test): Side {
  const stateDir = tempStateDir(t);
  const db = openDatabase(stateDir);
  const store = new TaskStore(db);
  return {
    name: 'sqlite', where: stateDir, partitions: 5000, randomKills: 8, workMs: 5,
    task: async (id) => store.require(id),
    partitionsOf: async (id) => store.partitions(id),
    taskEvents: async (id) => new EventLog(db).list({ taskId: id, kindPrefix: 'task.', limit: 1000 }).map((e) => e.kind),
  };
}

async function postgresSide(t: Test, server: Postgres): Promise<Side> {
  await server.psql('CREATE DATABASE stress');
  const uri = server.uri('stress');
  const admin = await PgBackend.open(uri, { deadAfterMs: DEAD_AFTER_MS });
  t.teardown(() => admin.close());
  const rows = async <R>(sql: string, args: unknown[]): Promise<R[]> => (await admin.pool.query(sql, args)).rows as R[];
  return {
    name: 'postgres', where: uri, partitions: 1000, randomKills: 6, workMs: 20,
    task: async (id) => toTask((await rows<TaskRow>('SELECT * FROM tasks WHERE id = $1', [id]))[0]),
    partitionsOf: async (id) => (await rows<PartitionRow>('SELECT * FROM partitions WHERE task_id = $1 ORDER BY idx', [id])).map(toPartition),
    taskEvents: async (id) => (await rows<{ kind: string }>("SELECT kind FROM events WHERE task_id = $1 AND kind LIKE 'task.%' ORDER BY id", [id])).map((r) => r.kind),
  };
}

t.test('the audit check detects a claim from a live owner (it can fail)', async (t) => {
  const l = (what: string, pid: number, ns: number): AuditLine => ({ what, task: 1, idx: 0, ctrl: pid, pid, t: BigInt(ns) });
  const good = [l('claim', 1, 10), l('claim', 2, 30), l('work', 2, 31), l('complete', 2, 32)];
  t.same(auditViolations(good, 1, new Map([[1, 20n]])), []);
  t.match(auditViolations(good, 1, new Map([[1, 40n]])), [/claimed by pid 2 .* while pid 1 .* was alive/]);
  t.match(auditViolations(good, 1, new Map()), [/was alive/]);
  t.match(auditViolations([...good, l('work', 3, 50)], 1, new Map([[1, 20n]])), [/after completion/, /does not own it/]);
  t.match(auditViolations([l('claim', 1, 1)], 2, new Map()), [/partition 0: never worked on/, /partition 1: never worked on/]);
});

async function stress(t: Test, side: Side): Promise<void> {
  const PARTITIONS = side.partitions;
  const MAX_RANDOM_KILLS = side.randomKills;
  const auditDir = mkdtempSync(join(tmpdir(), 'nbdraid-audit-'));
  t.teardown(() => rmSync(auditDir, { recursive: true, force: true }));
  const kills = new Map<number, bigint>();
  const children: Child[] = [];
  const start = (mode: string, arg: string): Child => {
    const c = spawnNode(WORKER, [side.where, auditDir, mode, arg], { NBDRAID_TEST_WORK_MS: String(side.workMs) });
    children.push(c);
    return c;
  };
  // Kills aim at workers at work (their audit has begun): one still starting (node, the
  // connection, the coordination thread) holds nothing a kill could test.
  const working = (c: Child): boolean => {
    try {
      return statSync(join(auditDir, `worker-${c.pid}.log`)).size > 0;
    } catch {
      return false;
    }
  };
  const kill = async (c: Child): Promise<void> => {
    if (kills.has(c.pid)) throw new Error(`pid ${c.pid} killed twice`);
    kills.set(c.pid, process.hrtime.bigint());
    await killHard(c);
  };

  const initiator = start('create', String(PARTITIONS));
  const [, taskIdText, initiatorCtrl] = await initiator.waitFor(/^ready (\d+) (\d+)$/);
  const taskId = Number(taskIdText);
  let live = [initiator];
  for (let i = 1; i < PROCESSES; i++) live.push(start('join', taskIdText));
  t.teardown(() => { for (const c of children) c.proc.kill('SIGKILL'); });

  const deadline = Date.now() + DEADLINE_MS;
  let initiatorKilledAt = -1, randomKills = 0, nextKill = Date.now() + 200;
  while ((await side.task(taskId)).state !== 'DONE' && Date.now() < deadline) {
    await sleep(20);
    const done = (await side.task(taskId)).partitionsDone;
    if (initiatorKilledAt < 0 && done >= PARTITIONS * 0.2) {
      initiatorKilledAt = done;
      await kill(initiator);
      live = live.filter((c) => c !== initiator).concat(start('join', taskIdText));
    } else if (randomKills < MAX_RANDOM_KILLS && done < PARTITIONS * 0.9 && Date.now() >= nextKill) {
      const others = live.filter((c) => c !== initiator && working(c));
      if (others.length === 0) continue;
      const victim = others[Math.floor(Math.random() * others.length)];
      await kill(victim);
      randomKills++;
      live = live.filter((c) => c !== victim).concat(start('join', taskIdText));
      nextKill = Date.now() + 100 + Math.random() * 200;
    }
  }
  const exits = await within(Promise.all(live.map((c) => c.exited)), 30_000);
  t.not(exits, 'timeout', 'every live worker exits once the task is DONE');
  if (exits !== 'timeout') t.same(exits.map((e) => e.code), live.map(() => 0), 'and exits cleanly');

  t.ok(initiatorKilledAt >= 0 && initiatorKilledAt < PARTITIONS, `initiator killed at ${initiatorKilledAt} of ${PARTITIONS} partitions`);
  t.ok(randomKills >= 1, `${randomKills} random kills besides the initiator`);
  const task = await side.task(taskId);
  t.equal(task.state, 'DONE');
  t.equal(task.partitionsDone, PARTITIONS);
  t.not(task.initiator, Number(initiatorCtrl), 'a live controller adopted the task');
  const parts = await side.partitionsOf(taskId);
  t.equal(parts.filter((p) => p.state === 'COMPLETE').length, PARTITIONS, 'every partition COMPLETE');
  t.equal(parts.filter((p) => p.owner !== null).length, 0, 'no owner left');

  const lines = readdirSync(auditDir).filter((f) => f.startsWith('worker-'))
    .flatMap((f) => parseAudit(readFileSync(join(auditDir, f), 'utf8')));
  const violations = auditViolations(lines, PARTITIONS, kills);
  t.same(violations.length, 0, `no ownership violation in ${lines.length} audit lines`);
  if (violations.length > 0) t.comment(violations.slice(0, 10).join('\n'));
  for (const v of violations.slice(0, 3)) {
    const idx = Number(/partition (\d+)/.exec(v)![1]);
    t.comment(lines.filter((l) => l.idx === idx).map((l) => `${l.what} ${l.pid} ${l.t} kill=${kills.get(l.pid)}`).join('\n'));
  }
  const reworked = new Set(lines.filter((l) => l.what === 'work').map((l) => l.idx)).size;
  const workLines = lines.filter((l) => l.what === 'work').length;
  t.ok(workLines - reworked <= kills.size, `partitions worked twice (${workLines - reworked}) <= kills (${kills.size})`);
  const claims = lines.filter((l) => l.what === 'claim').length;
  t.ok(claims > PARTITIONS, `partitions of killed workers were claimed again (${claims - PARTITIONS} re-claims)`);

  const completions = parseAudit(readFileSync(join(auditDir, 'completion.log'), 'utf8'));
  t.equal(completions.length, 1, 'the completion action ran exactly once');
  t.equal(completions[0]?.ctrl, task.initiator, 'on the adopting controller');
  t.same(task.result, { completedBy: task.initiator });
  const events = await side.taskEvents(taskId);
  t.ok(events.includes('task.adopted'), 'the adoption is in the events');
  t.same(events.filter((k) => k === 'task.done'), ['task.done']);
}

t.test('sqlite: 4 processes x 5,000 partitions, SIGKILLs and restarts, initiator adopted', (t) => stress(t, sqliteSide(t)));

const server = postgresBin() ? await startPostgres(t) : undefined;
t.test('postgres: 4 processes x 1,000 partitions, SIGKILLs and restarts, initiator adopted', { skip: !server && 'needs Debian\'s postgresql package' },
  async (t) => stress(t, await postgresSide(t, server!)));
