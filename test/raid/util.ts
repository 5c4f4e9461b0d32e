// Shared by the raid tests: error assertions and deterministic pseudo-random data.
import { NbdraidError } from '../../lib/errors.js';

interface Asserter {
  fail(msg: string): void;
  pass(msg: string): void;
}

/** Asserts that `fn` throws (or rejects with) an NbdraidError of `code` whose message starts with `prefix`. */
export async function rejectsWith(t: Asserter, fn: () => unknown, code: string, prefix = '', msg = ''): Promise<NbdraidError | undefined> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof NbdraidError && err.code === code && err.message.startsWith(prefix)) {
      t.pass(`${msg || 'rejects'}: ${err.message}`);
      return err;
    }
    t.fail(`${msg || 'rejects'}: wanted ${code} "${prefix}...", got ${(err as Error)?.message ?? String(err)} (${(err as NbdraidError)?.code})`);
    return undefined;
  }
  t.fail(`${msg || 'rejects'}: wanted ${code}, but it succeeded`);
  return undefined;
}
