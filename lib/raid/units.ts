// Sizes on the command line: 4096, 4K, 512K, 1M, 1G, 1T (binary units, case-insensitive, optional B/iB).
import { NbdraidError } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

export function parseSize(text: string | number, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(String(text));
  const value = m ? Math.round(Number(m[1]) * UNITS[m[2].toLowerCase()]) : NaN;
  if (!m || !Number.isSafeInteger(value) || value <= 0) {
    throw new NbdraidError('EINVAL', what, `"${text}" is not a size; use a number with an optional unit K, M, G or T (e.g. 512K, 1G)`);
  }
  return value;
}

export function formatSize(bytes: number): string {
  for (const [u, f] of [['T', 1024 ** 4], ['G', 1024 ** 3], ['M', 1024 ** 2], ['K', 1024]] as [string, number][]) {
    if (bytes >= f && bytes % (f / 1024) === 0) return `${+(bytes / f).toFixed(2)}${u}`;
  }
  return `${bytes}`;
}
