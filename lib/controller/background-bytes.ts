// Member bytes this controller's background work read and wrote, by task kind (rebuild, check,
// repair, resync), counted by the steps as they do the I/O; the metrics read the totals.
export interface ByteTotals { read: number; written: number }

export class BackgroundBytes {
  private readonly byKind = new Map<string, ByteTotals>();

  add(kind: string, read: number, written: number): void {
    const t = this.byKind.get(kind) ?? { read: 0, written: 0 };
    t.read += read;
    t.written += written;
    this.byKind.set(kind, t);
  }

  /** Totals so far, by kind (only kinds that did any I/O). */
  totals(): [string, ByteTotals][] {
    return [...this.byKind.entries()].map(([k, t]) => [k, { ...t }]);
  }
}
