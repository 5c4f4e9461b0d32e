// Reading V8's .cpuprofile (what `node --cpu-prof` writes): a tree of call frames (`nodes`, each
// with its own `hitCount` and `children`), the sampled leaf of every tick (`samples`) and the time
// before each tick (`timeDeltas`, microseconds). Self time per frame comes from the samples, each
// lasting until the next one (the last until `endTime`), as Chrome's profiler panel counts it; a
// profile without samples falls back to hitCount times the mean interval. Frames are summed by
// function (name, file:line) and by category: V8's pseudo-frames ((garbage collector), (program)
// = native code and syscalls outside JS, (idle)), our own files, node's internals by module and
// dependencies by package.
import fs from 'node:fs';

export interface CallFrame { functionName: string; scriptId?: string | number; url: string; lineNumber: number; columnNumber?: number }
export interface ProfileNode { id: number; callFrame: CallFrame; hitCount?: number; children?: number[] }
export interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples?: number[]; timeDeltas?: number[] }

/** Self time of one function or category, and its share of the profile's total sample time. */
export interface Cost { name: string; us: number; share: number }
/**
 * `location` is file:line; a native function (no file) is told apart by its nearest caller with
 * one (writeBuffer under a socket write or under fs.writeSync): `caller` names it, `location` is its.
 */
export interface FunctionCost extends Cost { location: string; category: string; caller?: string }

export interface ProfileSummary {
  /** Sum of all samples' durations, microseconds. */
  totalUs: number;
  samples: number;
  functions: FunctionCost[];
  categories: Cost[];
}

/** A span of the profile's clock (microseconds, CLOCK_MONOTONIC on Linux: process.hrtime's clock). */
export interface Window { fromUs: number; toUs: number }

export interface SummaryOptions {
  /** The repository root: files under ROOT/dist/ are ours, named by their source path. */
  root: string;
  /** How many functions to keep (default 12). */
  top?: number;
  /** Source maps by compiled file, for source lines of our code (see sourceLineMapper). */
  sourceLine?: (file: string, line: number) => number | undefined;
  /** Count only the sample time inside this span (e.g. the benchmark's run, not the start-up). */
  window?: Window;
}

const PSEUDO = new Set(['(garbage collector)', '(program)', '(idle)', '(root)']);

/**
 * Microseconds of self time per node id; with `window`, only each sample's overlap with it (a
 * profile without samples has no timeline: the window is ignored).
 */
export function selfTimes(p: CpuProfile, window?: Window): Map<number, number> {
  const out = new Map<number, number>();
  const add = (id: number, us: number): void => {
    out.set(id, (out.get(id) ?? 0) + us);
  };
  const samples = p.samples ?? [];
  const deltas = p.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    let at = p.startTime;
    const stamps = deltas.map((d) => (at += d));
    const from = window?.fromUs ?? -Infinity;
    const to = window?.toUs ?? Infinity;
    for (let i = 0; i < samples.length; i++) {
      const next = i + 1 < samples.length ? stamps[i + 1] : Math.max(p.endTime, stamps[i]);
      const us = Math.min(next, to) - Math.max(stamps[i], from);
      if (us > 0) add(samples[i], us);
    }
    return out;
  }
  const hits = p.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
  const each = hits > 0 ? (p.endTime - p.startTime) / hits : 0;
  for (const n of p.nodes) if (n.hitCount) add(n.id, n.hitCount * each);
  return out;
}

/** A file: URL or path as a plain path. */
function filePath(url: string): string {
  return url.startsWith('file://') ? decodeURIComponent(url.slice('file://'.length)) : url;
}

/** Our compiled file's source name relative to the root (dist/lib/x.js -> lib/x.ts), or undefined. */
function ownSource(file: string, root: string): string | undefined {
  const dist = `${root.replace(/\/$/, '')}/dist/`;
  return file.startsWith(dist) ? file.slice(dist.length).replace(/\.js$/, '.ts') : undefined;
}

/** The package a file under node_modules belongs to (the last node_modules, scoped names kept). */
function packageOf(file: string): string | undefined {
  const i = file.lastIndexOf('/node_modules/');
  if (i < 0) return undefined;
  const parts = file.slice(i + '/node_modules/'.length).split('/');
  return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
}

/** The category a frame's self time counts to. */
export function categoryOf(frame: CallFrame, root: string): string {
  if (PSEUDO.has(frame.functionName) && frame.url === '') return frame.functionName;
  if (frame.url === '') return '(native functions)';
  if (frame.url.startsWith('node:')) return frame.url;
  if (frame.url.startsWith('wasm://')) return '(wasm)';
  const file = filePath(frame.url);
  return ownSource(file, root) ?? (packageOf(file) ? `pkg ${packageOf(file)}` : file);
}

/** file:line of a frame (1-based line), our files by source name and, with a map, source line. */
function locationOf(frame: CallFrame, opts: SummaryOptions): string {
  if (frame.url === '') return '';
  const file = filePath(frame.url);
  const own = ownSource(file, opts.root);
  const line = frame.lineNumber + 1;
  if (own === undefined) return `${frame.url.startsWith('node:') ? frame.url : file.slice(file.lastIndexOf('/node_modules/') + 1)}:${line}`;
  const mapped = opts.sourceLine?.(file, frame.lineNumber);
  return mapped === undefined ? `${own.replace(/\.ts$/, '.js')}:${line}` : `${own}:${mapped + 1}`;
}

const byCost = (a: Cost, b: Cost): number => b.us - a.us || a.name.localeCompare(b.name);

export function summarise(p: CpuProfile, opts: SummaryOptions): ProfileSummary {
  const self = selfTimes(p, opts.window);
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const parents = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parents.set(c, n.id);
  /** The nearest ancestor of node `id` whose frame has a file. */
  const callerOf = (id: number): CallFrame | undefined => {
    for (let at = parents.get(id), hops = 0; at !== undefined && hops < p.nodes.length; at = parents.get(at), hops++) {
      const f = nodes.get(at)?.callFrame;
      if (f && f.url !== '') return f;
    }
    return undefined;
  };
  const totalUs = [...self.values()].reduce((a, b) => a + b, 0);
  const share = (us: number): number => (totalUs > 0 ? us / totalUs : 0);
  const fns = new Map<string, FunctionCost>();
  const cats = new Map<string, number>();
  for (const [id, us] of self) {
    const frame = nodes.get(id)?.callFrame;
    if (!frame || us === 0) continue;
    const category = categoryOf(frame, opts.root);
    cats.set(category, (cats.get(category) ?? 0) + us);
    const name = frame.functionName || '(anonymous)';
    const caller = frame.url === '' && !PSEUDO.has(frame.functionName) ? callerOf(id) : undefined;
    const location = locationOf(caller ?? frame, opts);
    const key = `${name}\0${location}`;
    const f: FunctionCost = fns.get(key) ?? { name, location, category, us: 0, share: 0, ...(caller ? { caller: caller.functionName || '(anonymous)' } : {}) };
    f.us += us;
    fns.set(key, f);
  }
  const functions = [...fns.values()].map((f) => ({ ...f, share: share(f.us) })).sort(byCost).slice(0, opts.top ?? 12);
  const categories = [...cats].map(([name, us]) => ({ name, us, share: share(us) })).sort(byCost);
  return { totalUs, samples: p.samples?.length ?? 0, functions, categories };
}

export function readProfile(file: string): CpuProfile {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
}

/**
 * Several profiles (one per process or thread) as one, for their sums: nodes renumbered, each
 * node's self time (within `window`) one sample; the merged profile has no timeline of its own.
 */
export function mergeProfiles(profiles: CpuProfile[], window?: Window): CpuProfile {
  const nodes: ProfileNode[] = [];
  const samples: number[] = [];
  const timeDeltas: number[] = [];
  let base = 0;
  let span = 0;
  for (const p of profiles) {
    const offset = base;
    const self = selfTimes(p, window);
    // Each node's self time becomes one synthetic sample: merging keeps the sums, not the timeline.
    for (const n of p.nodes) nodes.push({ id: n.id + offset, callFrame: n.callFrame, children: (n.children ?? []).map((c) => c + offset) });
    for (const [id, us] of self) {
      samples.push(id + offset);
      timeDeltas.push(us);
    }
    base += Math.max(0, ...p.nodes.map((n) => n.id)) + 1;
    span += [...self.values()].reduce((a, b) => a + b, 0);
  }
  // A sample lasts until the next one's stamp: shift the deltas by one so each keeps its own.
  return { nodes, startTime: 0, endTime: span, samples, timeDeltas: [0, ...timeDeltas.slice(0, -1)] };
}
