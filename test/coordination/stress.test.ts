// Four real controller processes share 5,000 partitions while workers are SIGKILLed at random and
// restarted, the initiator among them. An audit written outside the coordination tables proves
// exclusive ownership, completion of every partition, and one completion action by an adopter.
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDatabase } from '../../lib/coordination/db.js';
import { TaskStore } from '../../lib/coordination/tasks.js';
import { EventLog } from '../../lib/coordination/events.js';
import { auditViolations, parseAudit, type AuditLine } from '../helpers/coordination-audit.js';
import { killHard, sleep, spawnNode, within, type Child } from '../helpers/processes.js';
import { tempStateDir } from '../helpers/coordination.js';

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'workers', 'stress-worker.js');
const PARTITIONS = 5000;
const PROCESSES = 4;
const MAX_RANDOM_KILLS = 8;
const DEADLINE_MS = 120_000;

t.test('the audit check detects a claim from a live owner (it can fail)', async (t) => {
  const l = (what: string, pid: number, ns: number): AuditLine => ({ what, task: 1, idx: 0, ctrl: pid, pid, t: BigInt(ns) });
  const good = [l('claim', 1, 10), l('claim', 2, 30), l('work', 2, 31), l('complete', 2, 32)];
  t.same(auditViolations(good, 1, new Map([[1, 20n]])), []);
  t.match(auditViolations(good, 1, new Map([[1, 40n]])), [/claimed by pid 2 .* while pid 1 .* was alive/]);
  t.match(auditViolations(good, 1, new Map()), [/was alive/]);
  t.match(auditViolations([...good, l('work', 3, 50)], 1, new Map([[1, 20n]])), [/after completion/, /does not own it/]);
  t.match(auditViolations([l('claim', 1, 1)], 2, new Map()), [/partition 0: never worked on/, /partition 1: never worked on/]);
});

t.test('4 processes x 5,000 partitions, SIGKILLs and restarts, initiator adopted', async (t) => {
  const stateDir = tempStateDir(t);
  const auditDir = mkdtempSync(join(tmpdir(), 'nbdraid-audit-'));
  t.teardown(() => rmSync(auditDir, { recursive: true, force: true }));
  const kills = new Map<number, bigint>();
  const children: Child[] = [];
  const start = (mode: string, arg: string): Child => {
    const c = spawnNode(WORKER, [stateDir, auditDir, mode, arg]);
    children.push(c);
    return c;
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

  const store = new TaskStore(openDatabase(stateDir));
  const deadline = Date.now() + DEADLINE_MS;
  let initiatorKilledAt = -1, randomKills = 0, nextKill = Date.now() + 200;
  while (store.require(taskId).state !== 'DONE' && Date.now() < deadline) {
    await sleep(20);
    const done = store.require(taskId).partitionsDone;
    if (initiatorKilledAt < 0 && done >= PARTITIONS * 0.2) {
      initiatorKilledAt = done;
      await kill(initiator);
      live = live.filter((c) => c !== initiator).concat(start('join', taskIdText));
    } else if (randomKills < MAX_RANDOM_KILLS && done < PARTITIONS * 0.9 && Date.now() >= nextKill) {
      const others = live.filter((c) => c !== initiator);
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
  const task = store.require(taskId);
  t.equal(task.state, 'DONE');
  t.equal(task.partitionsDone, PARTITIONS);
  t.not(task.initiator, Number(initiatorCtrl), 'a live controller adopted the task');
  const parts = store.partitions(taskId);
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
  const events = new EventLog(openDatabase(stateDir)).list({ taskId, kindPrefix: 'task.', limit: 1000 }).map((e) => e.kind);
  t.ok(events.includes('task.adopted'), 'the adoption is in the events');
  t.same(events.filter((k) => k === 'task.done'), ['task.done']);
});
