// --log-format json on real processes: every line a controller (`serve NAME`) or a cluster prints
// is one JSON object with the time, level, controller, array, event and fields; a member failed
// with `nbdraid fail` and the rebuild onto the spare appear as their events. A bad value is one
// clear line and exit 1.
import t, { type Test } from 'tap';
import { MiB, createArray, startController } from '../helpers/cluster.js';
import { waitUntil } from '../helpers/deadline.js';
import { clusterArray, createArray as createClusterArray } from '../../harness/raid-array.js';
import { tempDir } from '../helpers/temp-dir.js';

interface JsonLine { time: string; level: string; controller: number | null; array: string | null; event: string; message: string; fields: Record<string, unknown> }

const LEVELS = ['info', 'warn', 'error'];
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** Every line of `output` as a JSON log line; a line that is not one fails the test, naming it. */
function parseLines(t: Test, output: string, array: string): JsonLine[] {
  const lines = output.split('\n').filter((l) => l !== '');
  const parsed: JsonLine[] = [];
  for (const line of lines) {
    let e: JsonLine;
    try {
      e = JSON.parse(line) as JsonLine;
    } catch {
      t.fail(`a line that is not JSON: ${line}`);
      continue;
    }
    const ok = typeof e === 'object' && e !== null && ISO_TIME.test(e.time) && !Number.isNaN(Date.parse(e.time))
      && LEVELS.includes(e.level) && typeof e.controller === 'number' && e.array === array
      && typeof e.event === 'string' && e.event !== '' && typeof e.message === 'string' && typeof e.fields === 'object' && e.fields !== null;
    if (!ok) t.fail(`a JSON line without the expected fields: ${line}`);
    else parsed.push(e);
  }
  return parsed;
}

/** The JSON lines of `output` that parse (for waiting; the full check is parseLines). */
function eventsIn(output: string): JsonLine[] {
  return output.split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l) as JsonLine];
    } catch {
      return [];
    }
  });
}

t.test('serve NAME --log-format json: one JSON object a line, the failure and the rebuild among them', async (t) => {
  const arr = await createArray(tempDir(t), { memberSize: 16 * MiB, members: 4, spare: true });
  const c = await startController(t, arr, ['--log-format', 'json']);
  await arr.cli(['fail', arr.name, '--member', '1']);
  const done = await waitUntil(() => eventsIn(c.stderr()).find((e) => e.event === 'rebuild.complete'), 60_000, 'a rebuild.complete line');
  await c.stop();

  const lines = parseLines(t, c.stderr(), arr.name);
  t.ok(lines.length >= 4, `${lines.length} lines, all JSON log lines`);
  t.ok(lines.every((e) => e.controller === c.id), 'each names this controller');
  const kinds = lines.map((e) => e.event);
  t.ok(kinds.includes('controller.serving'), 'the serving line is an event');
  const failed = lines.find((e) => e.event === 'member.failed');
  t.equal(failed?.level, 'warn', 'the failed member is a warning');
  t.equal(failed?.fields.slot, 1, 'with its slot');
  const faulty = lines.find((e) => e.event === 'raid' && /member 1 .*marked faulty/.test(e.message));
  t.equal(faulty?.level, 'warn', "the volume's own line about it is a warning too");
  t.equal(lines.find((e) => e.event === 'raid' && /member 1 rebuilt/.test(e.message))?.level, 'info', 'its rebuilt line is info');
  const started = lines.find((e) => e.event === 'rebuild.started');
  t.equal(started?.fields.slot, 1, 'the rebuild of that slot started');
  t.equal(started?.fields.path, arr.spare, 'onto the spare');
  t.equal(done.fields.task, started?.fields.task, 'and completed, same task');
  t.ok(kinds.indexOf('member.failed') < kinds.indexOf('rebuild.started') && kinds.indexOf('rebuild.started') < kinds.indexOf('rebuild.complete'), 'in that order');
  t.equal(kinds.at(-1), 'controller.stopping', 'the stop is the last line');
});

t.test('cluster --log-format json: every controller logs JSON lines with its own id', async (t) => {
  const dir = tempDir(t);
  const arr = await createClusterArray({ dir, name: 'lf', members: 3, memberSize: '8M' });
  const proc = await clusterArray(t, arr, 2, ['--log-format', 'json']);
  const serving = await waitUntil(() => {
    const s = eventsIn(proc.stderr()).filter((e) => e.event === 'controller.serving');
    return s.length === 2 ? s : undefined;
  }, 30_000, 'both controllers serving');
  t.equal(new Set(serving.map((e) => e.controller)).size, 2, 'two controllers, two ids');
  t.equal(await proc.stop(), 0, 'the cluster stops cleanly');
  const lines = parseLines(t, proc.stderr(), arr.name);
  t.equal(lines.filter((e) => e.event === 'controller.stopping').length, 2, 'both say they stop, as JSON');
});

t.test('a bad --log-format is one clear line and exit 1, before anything starts', async (t) => {
  const arr = await createArray(tempDir(t), { memberSize: 8 * MiB, members: 3 });
  for (const verb of [['serve', arr.name], ['cluster', arr.name]]) {
    const r = await arr.cli([...verb, '--log-format', 'xml'], { allowFailure: true });
    t.equal(r.code, 1, `${verb[0]}: exit 1`);
    t.equal(r.stderr, 'nbdraid: --log-format xml: expected human or json\n', `${verb[0]}: one line`);
  }
  t.same(await arr.json<unknown[]>(['controllers', '--all']), [], 'no controller ever registered');
});
