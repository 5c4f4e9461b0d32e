// Per-test scratch directories and sparse image files, removed when the test ends.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { safeTeardown } from '../../harness/cleanup.js';

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

export function tempDir(t: Teardown, prefix = 'nbdraid-e2e-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  safeTeardown(t, `remove ${dir}`, () => {
    // Never recurse into a file system still mounted below the directory.
    const mounted = fs.readFileSync('/proc/mounts', 'utf8').split('\n').some((l) => l.split(' ')[1]?.startsWith(dir));
    if (mounted) throw new Error(`${dir}: something is still mounted below it; not removing it`);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Creates (or truncates) a sparse file of `size` bytes and returns its path. */
export function sparseImage(dir: string, name: string, size: number): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  return file;
}
