// A controller's Prometheus metrics (`--metrics HOST:PORT`, docs/operations.md): NBD requests,
// bytes and latency per command as they are answered (the server's RequestObserver); everything
// else is read from the server, the volume, the coordination object and the throttle when
// scraped (collect callbacks), so nothing is kept twice and no I/O path pays for it.
//
//   const metrics = await ControllerMetrics.listen('r5', { host: '127.0.0.1', port: 9100 });
//   new NbdServer({ observer: metrics.requests, ... });
//   metrics.attach({ coord, volume, server, throttle, bytes });  // scrapes now see the controller
//   await metrics.close();
import http from 'node:http';
import type net from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Coordinator } from '../coordination/index.js';
import type { PartitionState } from '../coordination/records.js';
import { NbdraidError } from '../errors.js';
import type { SlotState } from '../raid/slots.js';
import type { RaidVolume } from '../raid/volume.js';
import type { NbdServer } from '../transport/server.js';
import type { CommandName, RequestObserver } from '../transport/stats.js';
import type { BackgroundBytes } from './background-bytes.js';
import type { Throttle } from './throttle.js';

/** What the collect callbacks read; absent until the controller has started. */
export interface MetricsSource {
  coord: Coordinator;
  volume: RaidVolume;
  server: NbdServer;
  throttle: Throttle;
  bytes: BackgroundBytes;
}

/** Who waited for a region lease: a client's request (the lease gate) or background work. */
export type LeaseWaiter = 'client' | 'background';

export interface MetricsAddress { host: string; port: number }

const SLOT_STATES: readonly SlotState[] = ['active', 'missing', 'faulty', 'rebuilding'];
const PARTITION_STATES: readonly PartitionState[] = ['READY', 'IN_PROGRESS', 'COMPLETE', 'FAILED'];
/** Array states, one of them 1 at a time. */
const ARRAY_STATES = ['optimal', 'degraded', 'offline'] as const;
/** Lease events of this controller counted from the journal (kind after 'lease.'). */
const LEASE_KINDS = ['granted', 'wanted', 'handed-over', 'freed'] as const;
/** Latency buckets (s): 50 us to 10 s. */
const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Journal rows read per scrape for lease events. */
const LEASE_EVENTS_PER_SCRAPE = 10_000;

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly requests: RequestObserver;
  private source: MetricsSource | null = null;
  private memberFailures: Counter<'slot'>;
  private readonly leaseWaits: Histogram<'by'>;
  private readonly commits: Histogram<'op' | 'result'>;
  private leaseEventsSeen = 0;
  /** The journal's newest id at attach, then each scrape's read in turn (two scrapes never count one event twice). */
  private leaseEventsStart: Promise<void> = Promise.resolve();
  private readonly leaseCounts = new Map<string, number>();

  private constructor(readonly arrayName: string, private readonly http: http.Server) {
    this.registry.setDefaultLabels({ array: arrayName });
    this.requests = this.requestMetrics();
    this.memberFailures = new Counter({ name: 'nbdraid_member_failures_total', help: 'Members this controller saw fail (I/O errors that failed a member), by slot', labelNames: ['slot'], registers: [this.registry] });
    this.connectionMetrics();
    this.arrayMetrics();
    this.taskMetrics();
    this.throttleMetrics();
    this.leaseMetrics();
    this.leaseWaits = new Histogram({ name: 'nbdraid_lease_wait_seconds', help: 'Waits for region leases not held in the lease cache (fetched, handed over by another controller, or a write-intent bit committed first), by who waited', labelNames: ['by'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
    this.commits = new Histogram({ name: 'nbdraid_coordination_commit_duration_seconds', help: 'Coordination writes on the coordination thread (heartbeat, claims, checkpoints, write intent...): time from the call to the committed answer, write-lock wait included, by operation and result', labelNames: ['op', 'result'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  }

  /** Starts the HTTP endpoint (GET /metrics); a busy or bad address is a clear error. */
  static async listen(arrayName: string, addr: MetricsAddress): Promise<ControllerMetrics> {
    const srv = http.createServer();
    const metrics = new ControllerMetrics(arrayName, srv);
    srv.on('request', (req, res) => void metrics.serve(req, res));
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(addr.port, addr.host, () => resolve());
    }).catch((err: NodeJS.ErrnoException) => {
      throw new NbdraidError(err.code === 'EADDRINUSE' ? 'EBUSY' : 'EIO', `--metrics ${addr.host}:${addr.port}`,
        `${err.message}; choose another address or stop whoever holds it`, { cause: err });
    });
    return metrics;
  }

  /** The bound address (port 0 picks a free one). */
  get address(): net.AddressInfo {
    return this.http.address() as net.AddressInfo;
  }

  /** From now on scrapes read this controller's state; member failures are counted. */
  attach(source: MetricsSource): void {
    this.source = source;
    this.leaseEventsStart = source.coord.thread.ops.events({ limit: 1 }).then((rows) => { this.leaseEventsSeen = rows.at(-1)?.id ?? 0; }, () => undefined);
    source.volume.on('member-failed', (slot: number) => this.memberFailures.inc({ slot: String(slot) }));
    source.coord.thread.observe((op, seconds, ok) => this.commits.observe({ op, result: ok ? 'ok' : 'error' }, seconds));
  }

  /** A region lease had to be waited for (LeaseGate, the worker). */
  leaseWaited(seconds: number, by: LeaseWaiter): void {
    this.leaseWaits.observe({ by }, seconds);
  }

  async close(): Promise<void> {
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('nbdraid serves its metrics at GET /metrics\n');
      return;
    }
    try {
      const body = await this.registry.metrics();
      res.writeHead(200, { 'content-type': this.registry.contentType }).end(body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics could not be collected: ${(err as Error).message}\n`);
    }
  }

  private requestMetrics(): RequestObserver {
    const registers = [this.registry];
    const requests = new Counter({ name: 'nbdraid_nbd_requests_total', help: 'NBD requests answered, by command and result (ok, error)', labelNames: ['command', 'result'], registers });
    const bytes = new Counter({ name: 'nbdraid_nbd_request_bytes_total', help: 'Bytes covered by NBD requests answered (their length), by command', labelNames: ['command'], registers });
    const latency = new Histogram({ name: 'nbdraid_nbd_request_duration_seconds', help: 'Time from a request received whole to its reply, by command', labelNames: ['command'], buckets: LATENCY_BUCKETS, registers });
    return {
      requestDone: (command: CommandName, n: number, seconds: number, ok: boolean) => {
        requests.inc({ command, result: ok ? 'ok' : 'error' });
        if (n > 0) bytes.inc({ command }, n);
        latency.observe({ command }, seconds);
      },
    };
  }

  /**
   * A gauge whose values are set from the source at every scrape (`fill` may be asynchronous).
   * What fill sets is noted first and applied after it, reset and set in one turn: two scrapes at
   * once never see each other's half-filled values.
   */
  private gauge<L extends string>(name: string, help: string, labelNames: L[], fill: (g: Gauge<L>, s: MetricsSource) => void | Promise<void>): void {
    const source = (): MetricsSource | null => this.source;
    new Gauge<L>({
      name, help, labelNames, registers: [this.registry],
      async collect() {
        const s = source();
        const sets: unknown[][] = [];
        if (s) await fill({ set: (...a: unknown[]) => { sets.push(a); } } as unknown as Gauge<L>, s);
        this.reset();
        for (const a of sets) (this.set as (...x: unknown[]) => void)(...a);
      },
    });
  }

  /** A counter whose total is read from the source at every scrape (it only ever grows there); applied as the gauges are. */
  private counter<L extends string>(name: string, help: string, labelNames: L[], fill: (set: (labels: Partial<Record<L, string>>, v: number) => void, s: MetricsSource) => void | Promise<void>): void {
    const source = (): MetricsSource | null => this.source;
    new Counter<L>({
      name, help, labelNames, registers: [this.registry],
      async collect() {
        const s = source();
        const incs: [Partial<Record<L, string>>, number][] = [];
        if (s) await fill((labels, v) => { incs.push([labels, v]); }, s);
        this.reset();
        for (const [labels, v] of incs) this.inc(labels, v);
      },
    });
  }

  private connectionMetrics(): void {
    this.gauge('nbdraid_controller_id', "This controller's id in the coordination object (as `nbdraid controllers` lists it)", [], (g, s) => g.set(s.coord.id));
    this.gauge('nbdraid_nbd_connections', 'NBD connections open now', [], (g, s) => g.set(s.server.connectionCount));
    this.counter('nbdraid_nbd_connections_total', 'NBD connections accepted', [], (set, s) => set({}, s.server.stats.connections));
    this.counter('nbdraid_nbd_connections_refused_total', 'NBD connections refused at --max-connections', [], (set, s) => set({}, s.server.stats.refusedConnections));
    this.counter('nbdraid_nbd_protocol_errors_total', 'NBD connections dropped for a protocol error or a timeout', [], (set, s) => set({}, s.server.stats.protocolErrors));
    this.gauge('nbdraid_nbd_payload_bytes', 'Request payload bytes held now, out of --payload-budget', [], (g, s) => g.set(s.server.budget.inUse));
    this.gauge('nbdraid_nbd_payload_budget_bytes', 'The --payload-budget', [], (g, s) => g.set(s.server.budget.total));
  }

  private arrayMetrics(): void {
    this.gauge('nbdraid_array_state', 'The array state as this controller serves it: 1 for the current one', ['state'], (g, s) => {
      const now = arrayState(s.volume);
      for (const st of ARRAY_STATES) g.set({ state: st }, st === now ? 1 : 0);
    });
    this.gauge('nbdraid_array_degraded', '1 while a member slot is not active (missing, faulty or rebuilding)', [], (g, s) => g.set(arrayState(s.volume) === 'optimal' ? 0 : 1));
    this.gauge('nbdraid_array_events', 'The md superblock events counter, as last written to the members', [], async (g, s) => g.set((await s.coord.thread.ops.writtenEvents(this.arrayName)) ?? s.volume.meta.events));
    this.gauge('nbdraid_array_slots', 'Member slots by state', ['state'], (g, s) => {
      for (const st of SLOT_STATES) g.set({ state: st }, s.volume.slots.filter((x) => x.state === st).length);
    });
    this.gauge('nbdraid_array_size_bytes', 'Volume size', [], (g, s) => g.set(s.volume.size));
    this.counter('nbdraid_member_io_errors_total', 'Member reads, writes and zeroings that failed in this controller, by slot', ['slot'], (set, s) => {
      s.volume.ioErrors.forEach((n, slot) => set({ slot: String(slot) }, n));
    });
  }

  /** Active tasks of the array (every controller's work, read from the coordination object). */
  private taskMetrics(): void {
    const progress = (s: MetricsSource) => s.coord.thread.ops.activeProgress(this.arrayName);
    const labels = (p: { task: { id: number; kind: string } }) => ({ task: String(p.task.id), kind: p.task.kind });
    this.gauge('nbdraid_tasks_active', 'Background tasks not yet finished', [], async (g, s) => g.set((await progress(s)).length));
    this.gauge('nbdraid_task_stripes_done', 'Stripes of completed partitions, by task', ['task', 'kind'], async (g, s) => {
      for (const p of await progress(s)) g.set(labels(p), p.stripesDone);
    });
    this.gauge('nbdraid_task_stripes_total', 'Stripes of all partitions, by task', ['task', 'kind'], async (g, s) => {
      for (const p of await progress(s)) g.set(labels(p), p.stripesTotal);
    });
    this.gauge('nbdraid_task_bytes', 'Member bytes written by the task so far (all controllers), by task', ['task', 'kind'], async (g, s) => {
      for (const p of await progress(s)) g.set(labels(p), p.bytes);
    });
    this.gauge('nbdraid_task_partitions', 'Partitions by task and state', ['task', 'kind', 'state'], async (g, s) => {
      for (const p of await progress(s)) for (const st of PARTITION_STATES) g.set({ ...labels(p), state: st }, p.counts[st]);
    });
  }

  private throttleMetrics(): void {
    this.gauge('nbdraid_throttle_min_mbps', "This controller's share of the background floor (MB/s)", [], (g, s) => g.set(s.throttle.getLimits().minMBps));
    this.gauge('nbdraid_throttle_max_mbps', "This controller's share of the background ceiling (MB/s, 0: none)", [], (g, s) => g.set(s.throttle.getLimits().maxMBps));
    this.gauge('nbdraid_throttle_inflight', 'Background I/Os allowed at once', [], (g, s) => g.set(s.throttle.getLimits().inflight));
    this.counter('nbdraid_background_bytes_total', "Member bytes this controller's background work read and wrote, by task kind and direction (read, written)", ['kind', 'direction'], (set, s) => {
      for (const [kind, t] of s.bytes.totals()) {
        set({ kind, direction: 'read' }, t.read);
        set({ kind, direction: 'written' }, t.written);
      }
    });
  }

  /** Lease events this controller recorded since it started, counted from the journal at each scrape. */
  private leaseMetrics(): void {
    this.counter('nbdraid_lease_events_total', 'Region lease events of this controller: granted, wanted, handed-over (to another controller), freed', ['kind'], async (set, s) => {
      const read = this.leaseEventsStart.then(() => this.readLeaseEvents(s));
      this.leaseEventsStart = read.catch(() => undefined);
      await read;
      for (const k of LEASE_KINDS) set({ kind: k }, this.leaseCounts.get(k) ?? 0);
    });
  }

  private async readLeaseEvents(s: MetricsSource): Promise<void> {
    const rows = await s.coord.thread.ops.events({ sinceId: this.leaseEventsSeen, arrayName: this.arrayName, kindPrefix: 'lease.', limit: LEASE_EVENTS_PER_SCRAPE });
    for (const e of rows) {
      this.leaseEventsSeen = Math.max(this.leaseEventsSeen, e.id);
      if (e.controller !== s.coord.id) continue;
      const kind = e.kind.slice('lease.'.length);
      this.leaseCounts.set(kind, (this.leaseCounts.get(kind) ?? 0) + 1);
    }
  }
}

function arrayState(volume: RaidVolume): (typeof ARRAY_STATES)[number] {
  if (volume.offline) return 'offline';
  return volume.slots.some((x) => x.state !== 'active') ? 'degraded' : 'optimal';
}
