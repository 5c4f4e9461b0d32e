// Human output for the CLI (sizes are parsed by lib/raid/units.ts): byte counts, rates, durations, tables and md-like progress bars.
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

export function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  if (seconds < 3600) return `${(seconds / 60).toFixed(1)}min`;
  return `${(seconds / 3600).toFixed(1)}h`;
}

/** md's bar: "[=======>.............]" for a fraction in [0, 1]. */
export function progressBar(fraction: number, width = 20): string {
  const f = Math.min(1, Math.max(0, fraction));
  const filled = Math.floor(f * width);
  const head = filled < width ? '>' : '';
  return `[${'='.repeat(filled)}${head}${'.'.repeat(Math.max(0, width - filled - head.length))}]`;
}

/** Left-aligned columns separated by two spaces; header row first. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  return cells.map((r) => r.map((v, c) => v.padEnd(widths[c])).join('  ').trimEnd()).join('\n');
}
