// A tree of files with random contents, and per-file SHA-256 checksums of a tree.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface TreeSpec {
  files: number;
  /** Largest file size; sizes are spread from 0 up to this. */
  maxFileBytes: number;
  /** Files per directory before a new nested directory starts. */
  perDir?: number;
}

/** Writes `spec.files` files into nested directories under `root`; returns the bytes written. */
export function makeTree(root: string, spec: TreeSpec): number {
  let bytes = 0;
  let dir = root;
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < spec.files; i++) {
    if (i > 0 && i % (spec.perDir ?? 16) === 0) {
      dir = path.join(i % 3 === 0 ? root : dir, `d${i}`);
      fs.mkdirSync(dir, { recursive: true });
    }
    // Mostly small files, a few large: cubic spread over [0, maxFileBytes].
    const size = Math.floor(spec.maxFileBytes * Math.random() ** 3);
    fs.writeFileSync(path.join(dir, `f${i}.bin`), randomBytes(size));
    bytes += size;
  }
  return bytes;
}

export function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** Relative path -> SHA-256 of every regular file under `root`, sorted by path. */
export function treeChecksums(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full);
      else if (e.isFile()) out[path.relative(root, full)] = sha256File(full);
    }
  };
  walk(root);
  return out;
}
