// The profile benchmark's reader of V8 .cpuprofile files (scripts/bench/_cpuprofile.ts) and of
// tsc's source maps (scripts/bench/_sourcemap.ts), on a small synthetic profile whose self times
// are worked out by hand: each sample lasts until the next one's stamp, the last until endTime.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { type CallFrame, type CpuProfile, categoryOf, mergeProfiles, selfTimes, summarise } from '../../scripts/bench/_cpuprofile.js';
import { decodeVlq, sourceLineMapper, sourceLines } from '../../scripts/bench/_sourcemap.js';

const ROOT = '/repo';
const frame = (functionName: string, url = '', lineNumber = -1): CallFrame => ({ functionName, url, lineNumber, columnNumber: 0, scriptId: 0 });

/**
 * Stamps (startTime 0 + deltas): 5 15 35 45 55 95 100 105 110 120, endTime 140, so the samples
 * last 10 20 10 10 40 5 5 5 10 20 us: 135 us in all. xorInto is sampled at two nodes of one
 * frame (two call paths): 10 + 20 + 20 = 50.
 */
function synthetic(): CpuProfile {
  return {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 3, 4, 5, 7, 8, 9, 10] },
      { id: 2, callFrame: frame('(program)') },
      { id: 3, callFrame: frame('(garbage collector)') },
      { id: 4, callFrame: frame('(idle)') },
      { id: 5, callFrame: frame('xorInto', 'file:///repo/dist/lib/raid/parity.js', 8) },
      { id: 6, callFrame: frame('writev') },
      { id: 7, callFrame: frame('onStreamRead', 'node:internal/stream_base_commons', 161) },
      { id: 8, callFrame: frame('run', 'file:///repo/node_modules/better-sqlite3/lib/methods/wrappers.js', 4) },
      { id: 9, callFrame: frame('', 'file:///repo/node_modules/@scope/pkg/dist/index.js', 0) },
      { id: 10, callFrame: frame('onData', 'file:///repo/dist/lib/transport/session.js', 41), children: [11, 12] },
      { id: 11, callFrame: frame('xorInto', 'file:///repo/dist/lib/raid/parity.js', 8) },
      { id: 12, callFrame: frame('(native bridge)'), children: [6] },
    ],
    startTime: 0,
    endTime: 140,
    samples: [5, 5, 2, 3, 4, 6, 7, 8, 9, 11],
    timeDeltas: [5, 10, 20, 10, 10, 40, 5, 5, 5, 10],
  };
}

const asMap = (costs: { name: string; us: number }[]): Record<string, number> => Object.fromEntries(costs.map((c) => [c.name, c.us]));

t.test('self time per node: each sample lasts until the next, the last until endTime', async (t) => {
  const self = selfTimes(synthetic());
  t.same(Object.fromEntries(self), { 5: 30, 2: 10, 3: 10, 4: 40, 6: 5, 7: 5, 8: 5, 9: 10, 11: 20 });
  t.equal([...self.values()].reduce((a, b) => a + b, 0), 135, 'the total is endTime minus the first stamp');
});

t.test('the summary by category and by function, as shares of the total', async (t) => {
  const s = summarise(synthetic(), { root: ROOT });
  t.equal(s.totalUs, 135);
  t.equal(s.samples, 10);
  t.same(asMap(s.categories), {
    'lib/raid/parity.ts': 50, '(idle)': 40, '(program)': 10, '(garbage collector)': 10, 'pkg @scope/pkg': 10,
    '(native functions)': 5, 'node:internal/stream_base_commons': 5, 'pkg better-sqlite3': 5,
  });
  t.same(s.categories.slice(0, 2).map((c) => c.name), ['lib/raid/parity.ts', '(idle)'], 'largest first');
  t.equal(s.categories[0].share, 50 / 135);
  const top = s.functions[0];
  t.same({ name: top.name, location: top.location, category: top.category, us: top.us }, { name: 'xorInto', location: 'lib/raid/parity.js:9', category: 'lib/raid/parity.ts', us: 50 },
    'one function sampled on two call paths is one row; a compiled line without a map keeps the .js name and its 1-based line');
  t.same(s.functions.map((f) => f.name), ['xorInto', '(idle)', '(anonymous)', '(garbage collector)', '(program)', 'onStreamRead', 'run', 'writev'],
    'ties in name order; onData has no self time and is not listed');
  const writev = s.functions.find((f) => f.name === 'writev');
  t.same({ caller: writev?.caller, location: writev?.location }, { caller: 'onData', location: 'lib/transport/session.js:42' }, 'a native function is placed by its nearest caller with a file');
  t.equal(s.functions.find((f) => f.name === '(idle)')?.caller, undefined, 'pseudo-frames have no caller');
  t.equal(s.functions.find((f) => f.name === 'onStreamRead')?.location, 'node:internal/stream_base_commons:162');
  t.equal(s.functions.find((f) => f.name === 'run')?.location, 'node_modules/better-sqlite3/lib/methods/wrappers.js:5');
  t.equal(summarise(synthetic(), { root: ROOT, top: 3 }).functions.length, 3, 'top limits the functions kept');
  const mapped = summarise(synthetic(), { root: ROOT, sourceLine: (file, line) => (file === '/repo/dist/lib/raid/parity.js' && line === 8 ? 19 : undefined) });
  t.equal(mapped.functions[0].location, 'lib/raid/parity.ts:20', 'with a source line, our file by its .ts name');
});

t.test('a window counts only the sample time inside it', async (t) => {
  // [15, 100]: the samples at 15 35 45 55 whole (20 10 10 40), the one at 95 for 5 us; the ones
  // at 5 (ending at 15) and 100 (starting at the edge) not at all.
  const s = summarise(synthetic(), { root: ROOT, window: { fromUs: 15, toUs: 100 } });
  t.equal(s.totalUs, 85);
  t.same(asMap(s.categories), { '(idle)': 40, 'lib/raid/parity.ts': 20, '(program)': 10, '(garbage collector)': 10, '(native functions)': 5 });
  const clipped = summarise(synthetic(), { root: ROOT, window: { fromUs: 100, toUs: 130 } });
  t.same(asMap(clipped.categories), { 'node:internal/stream_base_commons': 5, 'pkg better-sqlite3': 5, 'pkg @scope/pkg': 10, 'lib/raid/parity.ts': 10 }, 'the last sample is cut at the end');
});

t.test('without samples, hit counts share the profile span', async (t) => {
  const p: CpuProfile = {
    nodes: [
      { id: 1, callFrame: frame('(root)'), children: [2, 3] },
      { id: 2, callFrame: frame('(program)'), hitCount: 1 },
      { id: 3, callFrame: frame('xorInto', 'file:///repo/dist/lib/raid/parity.js', 8), hitCount: 3 },
    ],
    startTime: 1000, endTime: 2000,
  };
  t.same(asMap(summarise(p, { root: ROOT }).categories), { 'lib/raid/parity.ts': 750, '(program)': 250 });
});

t.test('merged profiles keep their sums', async (t) => {
  const merged = summarise(mergeProfiles([synthetic(), synthetic()]), { root: ROOT });
  t.equal(merged.totalUs, 270);
  t.same(asMap(merged.categories), Object.fromEntries(Object.entries(asMap(summarise(synthetic(), { root: ROOT }).categories)).map(([k, v]) => [k, 2 * v])));
  t.equal(merged.functions[0].us, 100, 'the same function in two profiles is one row');
  const windowed = summarise(mergeProfiles([synthetic(), synthetic()], { fromUs: 15, toUs: 100 }), { root: ROOT });
  t.equal(windowed.totalUs, 170, 'a window applies to each profile');
});

t.test('categories: pseudo-frames, native functions, node modules, packages, our files', async (t) => {
  t.equal(categoryOf(frame('(garbage collector)'), ROOT), '(garbage collector)');
  t.equal(categoryOf(frame('pread'), ROOT), '(native functions)');
  t.equal(categoryOf(frame('x', 'node:net', 1), ROOT), 'node:net');
  t.equal(categoryOf(frame('x', 'file:///repo/node_modules/a/node_modules/@b/c/index.js', 1), ROOT), 'pkg @b/c', 'the innermost package');
  t.equal(categoryOf(frame('x', 'file:///repo/dist/cmd/verbs/serve.js', 1), ROOT), 'cmd/verbs/serve.ts');
  t.equal(categoryOf(frame('x', 'wasm://wasm/1234', 1), ROOT), '(wasm)');
  t.equal(categoryOf(frame('x', 'file:///elsewhere/x.js', 1), ROOT), '/elsewhere/x.js');
});

t.test('source maps: VLQ numbers, the source line of each generated line', async (t) => {
  t.same(decodeVlq('AAgBC'), [0, 0, 16, 1], 'a continuation digit carries five more bits');
  t.same(decodeVlq('DF'), [-1, -2], 'the low bit is the sign');
  t.throws(() => decodeVlq('A*'), /not a base64 VLQ digit/);
  t.same(sourceLines('AAAA;AACA,CAAC;;AAEA'), [0, 1, undefined, 3], 'source lines are relative across segments and lines');
});

t.test('source maps: a real compiled file maps back to its .ts line', async (t) => {
  // This test runs compiled, beside its map; the summariser's own file is the sample.
  const js = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/bench/_sourcemap.js');
  const ts = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../scripts/bench/_sourcemap.ts');
  const jsLine = fs.readFileSync(js, 'utf8').split('\n').findIndex((l) => l.startsWith('export function sourceLines('));
  t.ok(jsLine > 0, 'the compiled file has the function');
  const mapped = sourceLineMapper()(js, jsLine);
  t.ok(mapped !== undefined, 'a source line is found');
  t.match(fs.readFileSync(ts, 'utf8').split('\n')[mapped as number], /^export function sourceLines\(/, 'and it holds the same function');
  t.equal(sourceLineMapper()('/nonexistent/file.js', 3), undefined, 'no map, no line');
});
