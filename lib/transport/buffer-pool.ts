// BufferPool: READ reply buffers and WRITE payload buffers kept for reuse instead of a fresh
// allocation per request (a fresh multi-MiB buffer costs page faults on first touch and garbage
// collection after). Buffers come in power-of-two size classes from 4 KiB to the largest request,
// plus HEADROOM bytes in front for a reply header. A buffer is given back only once nothing can
// still read or write it: a reply when the socket's write callback has run (the kernel, or TLS, has
// taken a copy), a payload when its request has been answered. The pool keeps at most
// maxIdleBytes of idle buffers; beyond that, given-back buffers are left to the collector.

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
  /** View handed out by takeView() -> the pooled buffer under it. */
  private readonly views = new WeakMap<Buffer, Buffer>();
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

  /** Exactly `size` bytes (64-byte aligned, after the headroom) of a pooled buffer; giveView() it back. */
  takeView(size: number): Buffer {
    const buf = this.take(size);
    const view = buf.subarray(HEADROOM, HEADROOM + size);
    this.views.set(view, buf);
    return view;
  }

  /** Returns a view from takeView(); anything else, or a view given twice, is ignored. */
  giveView(view: Buffer): void {
    const buf = this.views.get(view);
    if (!buf) return;
    this.views.delete(view);
    this.give(buf);
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
