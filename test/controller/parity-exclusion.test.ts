// Invariant 1 across processes: two controllers take small read-modify-write requests on the same
// stripes at the same moment. Only the region leases keep their parity updates from interleaving;
// without them this workload leaves stripes whose parity no longer matches their data, which the
// parity check below counts.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MiB, createArray, scrub, startController } from '../helpers/cluster.js';
import { runTool } from '../../harness/run-tool.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdraid-excl-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

/** fio: 4 KiB random writes (each one a read-modify-write) over [0, span) through `uri`, bounded. */
function hammer(uri: string, span: number, seed: number) {
  return runTool('fio', [
    '--name=rmw', '--ioengine=nbd', `--uri=${uri}`, '--rw=randwrite', '--bs=4k', '--iodepth=16', '--numjobs=2',
    `--size=${span}`, '--offset=0', `--randseed=${seed}`, '--time_based', '--runtime=6', '--number_ios=200000',
    '--thread', '--group_reporting',
  ], { timeoutMs: 60_000 });
}

t.test('concurrent read-modify-writes of one stripe through two controllers keep parity right', async (t) => {
  const arr = await createArray(dir, { memberSize: 64 * MiB }, 'x');
  const a = await startController(t, arr);
  const b = await startController(t, arr);
  // 4 x 64 KiB = 256 KiB stripes would be too few to race on; the default 512 KiB chunk gives
  // 2 MiB stripes, and 4 MiB of span keeps both controllers on the same two stripes.
  const span = 4 * MiB;
  const [ra, rb] = await Promise.all([hammer(a.uri, span, 1), hammer(b.uri, span, 2)]);
  t.equal(ra.code, 0, 'fio through controller A finished');
  t.equal(rb.code, 0, 'fio through controller B finished');
  const check = await scrub(arr, 'check');
  t.equal(check.state, 'DONE', `check ran (${check.reason ?? 'ok'})`);
  t.equal(check.result?.mismatches, 0, 'no stripe has parity that disagrees with its data');
  const events = await arr.json<LeaseEvent[]>(['events', '--limit', '100000']);
  t.ok(events.length < 100000, 'the whole event log was read (the replay needs every lease event)');
  const { violations, acquired } = replayLeases(events);
  t.same(violations, [], 'no region lease was ever taken while another controller held it');
  t.equal(acquired.size, 2, `both controllers held a region lease (${[...acquired.entries()].map(([c, n]) => `controller ${c}: ${n}`).join(', ')})`);
  t.ok([...acquired.values()].every((n) => n >= 2), 'and each took one back after the other had it: the lease moved both ways');
});

interface LeaseEvent { id: number; controller: number | null; kind: string; detail: { region?: number; to?: number; id?: number } | null }

/**
 * Replays the lease events in commit order (each is written in the transaction that changes the
 * lease) and reports every step that would give a region two holders at once: a grant of a held
 * region, or a hand-over or free by a controller that did not hold it.
 */
function replayLeases(events: LeaseEvent[]): { violations: string[]; acquired: Map<number, number> } {
  const holder = new Map<number, number>();
  const acquired = new Map<number, number>();
  const violations: string[] = [];
  const take = (region: number, c: number) => {
    holder.set(region, c);
    acquired.set(c, (acquired.get(c) ?? 0) + 1);
  };
  for (const e of [...events].sort((x, y) => x.id - y.id)) {
    const region = e.detail?.region;
    if (e.kind.startsWith('controller.') && e.kind !== 'controller.registered') {
      const gone = e.detail?.id ?? e.controller;
      for (const [r, c] of holder) if (c === gone) holder.delete(r);
      continue;
    }
    if (region === undefined || e.controller === null) continue;
    const current = holder.get(region);
    if (e.kind === 'lease.granted') {
      if (current !== undefined && current !== e.controller) violations.push(`event ${e.id}: region ${region} granted to ${e.controller} while ${current} held it`);
      take(region, e.controller);
    } else if (e.kind === 'lease.handed-over') {
      if (current !== e.controller) violations.push(`event ${e.id}: region ${region} handed over by ${e.controller}, held by ${current ?? 'nobody'}`);
      take(region, e.detail!.to!);
    } else if (e.kind === 'lease.freed') {
      if (current !== e.controller) violations.push(`event ${e.id}: region ${region} freed by ${e.controller}, held by ${current ?? 'nobody'}`);
      holder.delete(region);
    }
  }
  return { violations, acquired };
}
