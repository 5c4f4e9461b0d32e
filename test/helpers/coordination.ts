// Shared pieces of the coordination tests: temporary state directories.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { safeTeardown } from '../../harness/cleanup.js';

interface Teardown { teardown(fn: () => void): void }

/** A fresh state directory removed when the test ends. */
export function tempStateDir(t: Teardown, prefix = 'nbdraid-coord-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  safeTeardown(t, `remove ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}


/** Asserts that `fn` throws an error carrying `code` (and a message matching `message`, if given). */
export function throwsCode(t: Test, fn: () => unknown, code: string, message?: RegExp): void {
  try {
    fn();
  } catch (err) {
    t.equal((err as { code?: string }).code, code, `throws ${code}: ${(err as Error).message}`);
    if (message && !message.test((err as Error).message)) t.fail(`message '${(err as Error).message}' does not match ${message}`);
    return;
  }
  t.fail(`expected a throw with code ${code}`);
}
