// Source lines of our compiled files from tsc's source maps (FILE.js.map beside FILE.js, format
// version 3): `mappings` holds, per generated line, segments of base64 VLQ numbers, the first four
// being generated column, source index, source line and source column, each relative to the
// previous segment (the generated column only within a line). Used to name profiled functions by
// their .ts line.
import fs from 'node:fs';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** The numbers of one VLQ segment. */
export function decodeVlq(segment: string): number[] {
  const out: number[] = [];
  let value = 0;
  let shift = 0;
  for (const ch of segment) {
    const digit = B64.indexOf(ch);
    if (digit < 0) throw new Error(`not a base64 VLQ digit: '${ch}'`);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
      continue;
    }
    out.push(value & 1 ? -(value >>> 1) : value >>> 1);
    value = 0;
    shift = 0;
  }
  return out;
}

/** Per generated line (0-based), the source line (0-based) its first mapped segment points to. */
export function sourceLines(mappings: string): (number | undefined)[] {
  const out: (number | undefined)[] = [];
  let srcLine = 0;
  for (const line of mappings.split(';')) {
    let first: number | undefined;
    for (const seg of line.split(',')) {
      if (seg === '') continue;
      const v = decodeVlq(seg);
      if (v.length < 4) continue;
      srcLine += v[2];
      first ??= srcLine;
    }
    out.push(first);
  }
  return out;
}

/** (compiled file, 0-based line) -> 0-based source line, reading each map once; undefined without one. */
export function sourceLineMapper(): (file: string, line: number) => number | undefined {
  const maps = new Map<string, (number | undefined)[] | null>();
  return (file, line) => {
    let lines = maps.get(file);
    if (lines === undefined) {
      try {
        lines = sourceLines((JSON.parse(fs.readFileSync(`${file}.map`, 'utf8')) as { mappings: string }).mappings);
      } catch {
        lines = null;
      }
      maps.set(file, lines);
    }
    return lines?.[line];
  };
}
