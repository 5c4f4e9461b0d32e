// The life bound's rules on a clock moved by hand: held from T/2 after the send of the last
// answered heartbeat, live again on an answer, lost for good at T or when reaped.
import t from 'tap';
import { LifeBound, type LifeState } from '../../lib/coordination/life-bound.js';

function bound(T: number) {
  let now = 1000;
  const seen: LifeState[] = [];
  const b = new LifeBound({ deadAfterMs: T, checkMs: 1_000_000, now: () => now, onChange: (s) => { seen.push(s); } });
  t.teardown(() => b.stop());
  return { b, seen, at: (ms: number) => { now = ms; b.check(); } };
}

t.test('held at T/2, live again on an answer, lost at T', async (t) => {
  const { b, seen, at } = bound(4000);
  at(2999);
  t.equal(b.state, 'live', 'live just before T/2');
  at(3000);
  t.equal(b.state, 'overdue', 'held at T/2 after the start');
  const sent = 3100;
  at(3200);
  b.renewed(sent);
  t.equal(b.state, 'live', 'an answered heartbeat brings it back');
  at(sent + 1999);
  t.equal(b.state, 'live', 'T/2 counts from the send of that heartbeat');
  at(sent + 2000);
  t.equal(b.state, 'overdue');
  at(sent + 4000);
  t.equal(b.state, 'lost', 'lost at T after the send');
  b.renewed(sent + 4100);
  t.equal(b.state, 'lost', 'an answer after the loss changes nothing');
  t.same(seen, ['overdue', 'live', 'overdue', 'lost'], 'every change told once, in order');
});

t.test('an answer to an older heartbeat does not move the bound back', async (t) => {
  const { b, at } = bound(4000);
  b.renewed(1500);
  b.renewed(1200); // answered late, sent earlier
  at(1500 + 1999);
  t.equal(b.state, 'live');
  at(1500 + 2000);
  t.equal(b.state, 'overdue', 'held from the latest send, not the latest answer');
});

t.test('reaped by the database: lost at once, whatever the clock', async (t) => {
  const { b, seen } = bound(4000);
  b.reaped('row no longer live');
  t.equal(b.state, 'lost');
  t.same(seen, ['lost']);
});
