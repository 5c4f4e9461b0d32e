// The benchmarks' SVG chart writer (scripts/bench/_svg-chart.ts): the document is well-formed XML
// (Python's expat parser reads it), text is escaped, and every point lands where the axes say:
// the corners of the plot area for the ends of the axes, its middle for the middle.
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { LAYOUT, chartHeight, niceAxis, plotArea, svgChart } from '../../scripts/bench/_svg-chart.js';
import { runTool } from '../../harness/run-tool.js';
import { tempDir } from '../helpers/temp-dir.js';

const PARSE = 'import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]).documentElement; print(d.tagName, d.getAttribute("xmlns"), len(d.getElementsByTagName("polyline")))';

/** Parses `svg` with Python's XML parser: root tag, its namespace and how many polylines. */
async function parsed(t: Test, svg: string): Promise<string> {
  const file = path.join(tempDir(t), 'chart.svg');
  fs.writeFileSync(file, svg);
  return (await runTool('python3', ['-c', PARSE, file], { timeoutMs: 30_000 })).stdout.trim();
}

/** The points of each polyline, in document order. */
function polylines(svg: string): [number, number][][] {
  return [...svg.matchAll(/<polyline class="series" points="([^"]*)"/g)].map((m) => m[1].split(' ').map((p) => p.split(',').map(Number) as [number, number]));
}

const spec = {
  title: 'rebuild <under> load & "latency"',
  subtitle: "4 KiB reads, QD4 (it's a test)",
  xLabel: 'time', xUnit: 's',
  panels: [
    { label: 'rebuild', unit: 'MB/s', points: [[0, 0], [5, 50], [10, 100]] as [number, number][] },
    { label: 'read p99', unit: 'ms', points: [[0, 1], [5, 0.5], [10, 0]] as [number, number][] },
  ],
};

t.test('the chart is well-formed XML, with text escaped', async (t) => {
  const svg = svgChart(spec);
  t.equal(await parsed(t, svg), 'svg http://www.w3.org/2000/svg 2', 'an svg root in the SVG namespace with two lines');
  t.match(svg, 'rebuild &lt;under&gt; load &amp; &quot;latency&quot;', 'the title is escaped');
  t.match(svg, 'rebuild (MB/s)', 'the first y axis has its label and unit');
  t.match(svg, 'read p99 (ms)', 'the second too');
  t.match(svg, 'time (s)', 'and the x axis');
  t.match(svg, `height="${chartHeight(2)}"`, 'two stacked panels high');
  const empty = svgChart({ ...spec, panels: [{ label: 'rebuild', unit: 'MB/s', points: [] }] });
  t.equal(await parsed(t, empty), 'svg http://www.w3.org/2000/svg 0', 'a panel without samples is still a valid document');
  t.match(empty, 'no samples', 'and says so');
});

t.test('points map to their coordinates on each panel', async (t) => {
  const [top, bottom] = polylines(svgChart(spec));
  const a = plotArea(0);
  const b = plotArea(1);
  t.ok(b.y >= a.y + a.height + LAYOUT.gap, 'the second panel is below the first');
  // x 0..10 and y 0..100 (top), 0..1 (bottom) are already round: the axes end at the data's ends.
  t.same(top, [[a.x, a.y + a.height], [a.x + a.width / 2, a.y + a.height / 2], [a.x + a.width, a.y]], 'top: corners and middle');
  t.same(bottom, [[b.x, b.y], [b.x + b.width / 2, b.y + b.height / 2], [b.x + b.width, b.y + b.height]], 'bottom: its own y axis');
  // A maximum that is not round: the axis ends at the next tick, and the point lands below the top.
  const [line] = polylines(svgChart({ ...spec, panels: [{ label: 'r', unit: 'MB/s', points: [[0, 0], [4, 180]] }] }));
  t.same(niceAxis([0, 180]), { min: 0, max: 200, step: 50 }, '180 rounds up to an axis of 0..200');
  t.equal(line[1][0], a.x + a.width, '4 s is the right end');
  t.ok(Math.abs(line[1][1] - (a.y + a.height / 10)) < 0.01, `180 sits at 9/10 of the height (y ${line[1][1]})`);
});

t.test('axis ranges are round and cover the data', async (t) => {
  t.same(niceAxis([0, 7.3]), { min: 0, max: 8, step: 2 });
  t.same(niceAxis([3, 3]), { min: 0, max: 3, step: 1 }, 'a constant starts at zero');
  t.same(niceAxis([]), { min: 0, max: 0.2, step: 0.2 }, 'no data: a small axis from zero');
  t.same(niceAxis([-2, 9]), { min: -2.5, max: 10, step: 2.5 }, 'negative values are covered');
  const ax = niceAxis([0, 12_345]);
  t.ok(ax.max >= 12_345 && ax.min === 0 && (ax.max - ax.min) / ax.step <= 2 * LAYOUT.ticks, `0..12345 on ${ax.max / ax.step} ticks of ${ax.step}`);
});
