// Every wait in the suite has a deadline: a promise raced against a timer that rejects with what
// was awaited, and a bounded poll of a condition. Deadlines bound a wait; they assert no timing.
import { once, type EventEmitter } from 'node:events';

/** `p`, or a rejection naming `what` after `ms`; the timer never outlives the race. */
export async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expiry = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`deadline: ${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, expiry]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves with the arguments of the first `event` from `emitter`, or rejects after `ms`. */
export function nextEvent(emitter: EventEmitter, event: string, ms: number, what = `'${event}'`): Promise<unknown[]> {
  const ac = new AbortController();
  return withDeadline(once(emitter, event, { signal: ac.signal }), ms, what).finally(() => ac.abort());
}

/** Polls `cond` (sync or async) every `everyMs` until it is truthy; rejects naming `what` after `ms`. */
export async function waitUntil<T>(
  cond: () => T | Promise<T>, ms: number, what: string, everyMs = 10,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`deadline: ${what} did not hold within ${ms} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Waits until `sample()` has returned the same value (compared as JSON) `samples` times in a row,
 * `everyMs` apart: for "nothing more happens" checks, where a fixed sleep would hope instead of
 * look. Rejects naming `what` if it keeps changing for `ms`.
 */
export async function settled<T>(sample: () => T, ms: number, what: string, samples = 5, everyMs = 20): Promise<T> {
  const deadline = Date.now() + ms;
  let last = JSON.stringify(sample());
  let same = 1;
  while (same < samples) {
    if (Date.now() > deadline) throw new Error(`deadline: ${what} did not settle within ${ms} ms (last ${last})`);
    await new Promise((r) => setTimeout(r, everyMs));
    const now = JSON.stringify(sample());
    same = now === last ? same + 1 : 1;
    last = now;
  }
  return JSON.parse(last) as T;
}
