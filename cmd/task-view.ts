// Progress of background tasks as people read it in /proc/mdstat: an md-like bar with percent,
// speed and ETA, and which controller works on which partition.
import type { TaskProgress } from '../lib/coordination/index.js';
import type { Checkpoint } from '../lib/controller/steps.js';
import { formatDuration, formatRate, progressBar } from './format.js';

const LABEL: Record<string, string> = { rebuild: 'recovery', check: 'check', repair: 'repair', resync: 'resync' };

export interface TaskView {
  id: number;
  kind: string;
  state: string;
  percent: number;
  stripesDone: number;
  stripesTotal: number;
  bytes: number;
  /** Bytes per second (per member, like md's speed). */
  speed: number;
  etaSeconds: number | null;
  partitions: { total: number; complete: number; inProgress: number; failed: number };
  working: { partition: number; controller: number; stripe: number }[];
  result: unknown;
  reason: string | null;
}

/** Derives the view; `speed` comes from the caller's sampling when watching, else the average. */
export function taskView(p: TaskProgress, now = Date.now(), speed?: number): TaskView {
  const partial = p.inProgress.reduce((n, w) => n + Math.max(0, ((w.checkpoint as Checkpoint | null)?.next ?? w.stripeStart) - w.stripeStart), 0);
  const done = Math.min(p.stripesTotal, p.stripesDone + partial);
  const elapsed = ((p.task.finishedAt ?? now) - p.task.createdAt) / 1000;
  const rate = speed ?? (elapsed > 0 ? p.bytes / elapsed : 0);
  const left = p.stripesTotal - done;
  const perStripe = done > 0 ? p.bytes / done : 0;
  return {
    id: p.task.id, kind: p.task.kind, state: p.task.state,
    percent: p.stripesTotal > 0 ? (100 * done) / p.stripesTotal : 100,
    stripesDone: done, stripesTotal: p.stripesTotal, bytes: p.bytes, speed: rate,
    etaSeconds: rate > 0 && perStripe > 0 ? (left * perStripe) / rate : null,
    partitions: { total: p.task.partitionsTotal, complete: p.counts.COMPLETE, inProgress: p.counts.IN_PROGRESS, failed: p.counts.FAILED },
    working: p.inProgress.map((w) => ({ partition: w.idx, controller: w.owner, stripe: (w.checkpoint as Checkpoint | null)?.next ?? w.stripeStart })),
    result: p.task.result, reason: p.task.reason,
  };
}

/** Two lines per task, md style. */
export function formatTask(v: TaskView): string {
  const label = LABEL[v.kind] ?? v.kind;
  const active = v.state === 'RUNNING' || v.state === 'PAUSED' || v.state === 'COMPLETING';
  const line1 = `      ${progressBar(v.percent / 100)}  ${label} = ${v.percent.toFixed(1)}% (${v.stripesDone}/${v.stripesTotal} stripes)`
    + (active ? ` finish=${v.etaSeconds === null ? '?' : formatDuration(v.etaSeconds)} speed=${formatRate(v.speed)}` : '');
  const workers = v.working.map((w) => `#${w.partition}@c${w.controller}`).join(' ');
  const line2 = `      task ${v.id} ${v.kind} ${v.state}: partitions ${v.partitions.complete}/${v.partitions.total} complete`
    + (v.partitions.inProgress > 0 ? `, in progress ${workers}` : '')
    + (v.partitions.failed > 0 ? `, ${v.partitions.failed} FAILED` : '')
    + (v.reason ? ` (${v.reason})` : '');
  return `${line1}\n${line2}`;
}
