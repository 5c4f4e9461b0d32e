// Two scrapes at once (a pair of Prometheus servers) report each counter once: the values a scrape
// reads through the coordination thread are applied after the reads, in one turn, so a second
// scrape's reset cannot land between another's reset and its increments. The source is a stand-in
// whose journal reads take 20 ms, which makes the two scrapes overlap.
import http from 'node:http';
import t from 'tap';
import { ControllerMetrics, type MetricsSource } from '../../lib/controller/metrics.js';

const get = (port: number) => new Promise<string>((resolve, reject) => {
  http.get({ host: '127.0.0.1', port, path: '/metrics' }, (r) => {
    let body = '';
    r.on('data', (d) => { body += d; });
    r.on('end', () => resolve(body));
  }).on('error', reject);
});
const granted = (body: string) => Number(/nbdraid_lease_events_total\{[^}]*kind="granted"[^}]*\} (\d+)/.exec(body)?.[1]);

t.test('concurrent scrapes report the lease event counter once each', async (t) => {
  const m = await ControllerMetrics.listen('md0', { host: '127.0.0.1', port: 0 });
  t.teardown(() => m.close());
  const slow = <T>(v: T) => new Promise<T>((resolve) => setTimeout(() => resolve(v), 20));
  const journal = [1, 2, 3].map((id) => ({ id, controller: 7, kind: 'lease.granted' }));
  m.attach({
    coord: {
      id: 7,
      thread: {
        observe() {},
        ops: {
          events: (q: { sinceId?: number }) => slow(q.sinceId === undefined ? [] : journal.filter((e) => e.id > (q.sinceId ?? 0))),
          writtenEvents: () => slow(1),
          activeProgress: () => slow([]),
        },
      },
    },
    volume: { on() {}, offline: false, slots: [], meta: { events: 0 }, size: 0, ioErrors: [] },
    server: { connectionCount: 0, stats: { connections: 0, refusedConnections: 0, protocolErrors: 0 }, budget: { inUse: 0, total: 0 } },
    throttle: { getLimits: () => ({ minMBps: 0, maxMBps: 0, inflight: 1 }) },
    bytes: { totals: () => [] },
  } as unknown as MetricsSource);
  const [s1, s2] = await Promise.all([get(m.address.port), get(m.address.port)]);
  const s3 = await get(m.address.port);
  t.same([granted(s1), granted(s2), granted(s3)], [3, 3, 3], 'every scrape reports the 3 grants');
});
