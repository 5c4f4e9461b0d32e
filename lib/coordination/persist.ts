// Waiting out a coordination database that is away: a call that failed with EAGAIN (pg/
// unavailable.ts) is made again until it is answered, or until the caller gives up. Only for
// calls that are safe to repeat after an answer that was lost (a take of a lease one holds, a
// checkpoint, a bit already set): each is one transaction, and a repeat leaves the same state
// (a checkpoint's byte count, which only feeds progress, may then count a window twice).
const EVERY_MS = 250;

export async function persist<T>(call: () => Promise<T>, keepTrying: () => boolean): Promise<T> {
  for (;;) {
    try {
      return await call();
    } catch (err) {
      if ((err as { code?: string }).code !== 'EAGAIN' || !keepTrying()) throw err;
      await new Promise((r) => setTimeout(r, EVERY_MS));
    }
  }
}
