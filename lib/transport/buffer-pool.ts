// BufferPool: READ reply buffers kept for reuse instead of a fresh allocation per reply (a fresh
// multi-MiB buffer costs page faults on first touch and garbage collection after). Buffers come
// in power-of-two size classes from 4 KiB to the largest request, plus HEADROOM bytes in front for
// the reply header. A buffer is given back only once nothing can still read it: for a reply, when
// the socket's write callback has run (the kernel, or TLS, has taken a copy). The pool keeps at
// most maxIdleBytes of idle buffers; beyond that, given-back buffers are left to the collector.

/** Room in front of the data for any reply header (the extended chunk header and its offset). */
export const HEADROOM = 64;

const MIN_CLASS = 12; // 4 KiB

export interface PoolStats {
  /** Buffers handed out from the idle lists. */
  reused: number;
  /** Buffers allocated because no idle one of the class was there. */
  allocated: number;
  /** Buffers given back but dropped because the idle bound was reached. */
  dropped: number;
  /** Buffers handed out and not yet given back. */
  outstanding: number;
  idleBytes: number;
  peakIdleBytes: number;
}

export class BufferPool {
  private readonly idle = new Map<number, Buffer[]>();
  private readonly out = new WeakSet<Buffer>();
  readonly stats: PoolStats = { reused: 0, allocated: 0, dropped: 0, outstanding: 0, idleBytes: 0, peakIdleBytes: 0 };

  constructor(readonly maxIdleBytes: number) {}

  /** A buffer of at least HEADROOM + size bytes (its class size); give() it back when done. */
  take(size: number): Buffer {
    const bytes = HEADROOM + classSize(size);
    const b = this.idle.get(bytes)?.pop();
    if (b) {
      this.stats.idleBytes -= b.length;
      this.stats.reused++;
    } else {
      this.stats.allocated++;
    }
    const buf = b ?? Buffer.allocUnsafeSlow(bytes);
    this.out.add(buf);
    this.stats.outstanding++;
    return buf;
  }

  /** Returns a buffer from take(); anything else, or a buffer given twice, is ignored. */
  give(buf: Buffer): void {
    if (!this.out.delete(buf)) return;
    this.stats.outstanding--;
    if (this.stats.idleBytes + buf.length > this.maxIdleBytes) {
      this.stats.dropped++;
      return;
    }
    const list = this.idle.get(buf.length);
    if (list) list.push(buf);
    else this.idle.set(buf.length, [buf]);
    this.stats.idleBytes += buf.length;
    if (this.stats.idleBytes > this.stats.peakIdleBytes) this.stats.peakIdleBytes = this.stats.idleBytes;
  }
}

/** The smallest power of two >= size, at least 4 KiB. */
function classSize(size: number): number {
  let c = 1 << MIN_CLASS;
  while (c < size) c *= 2;
  return c;
}
