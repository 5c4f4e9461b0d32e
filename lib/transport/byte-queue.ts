// ByteQueue: the bytes received so far, as a list of socket chunks. take(n) slices without copying
// when the n bytes lie in one chunk (the common case for headers and small payloads) and makes
// exactly one allocation otherwise.

export class ByteQueue {
  private chunks: Buffer[] = [];
  /** Bytes of chunks[0] already consumed. */
  private head = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** The u32 at the front, without consuming it; requires length >= 4. */
  peekUInt32(): number {
    const first = this.chunks[0];
    if (first.length - this.head >= 4) return first.readUInt32BE(this.head);
    const b = Buffer.allocUnsafe(4);
    let pos = 0;
    for (let i = 0, at = this.head; pos < 4; i++, at = 0) {
      const c = this.chunks[i];
      const k = Math.min(c.length - at, 4 - pos);
      c.copy(b, pos, at, at + k);
      pos += k;
    }
    return b.readUInt32BE(0);
  }

  /** Removes and returns the first n bytes; requires length >= n. */
  take(n: number): Buffer {
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.consume(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    this.takeInto(out, 0, n);
    return out;
  }

  /** Moves the first n bytes into out at pos (requires length >= n); returns n. */
  takeInto(out: Buffer, pos: number, n: number): number {
    let done = 0;
    while (done < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length - this.head, n - done);
      c.copy(out, pos + done, this.head, this.head + k);
      done += k;
      this.consume(k);
    }
    return n;
  }

  /** Drops up to n bytes; returns how many were dropped. */
  skip(n: number): number {
    let left = Math.min(n, this.total);
    const dropped = left;
    while (left > 0) {
      const k = Math.min(this.chunks[0].length - this.head, left);
      this.consume(k);
      left -= k;
    }
    return dropped;
  }

  /** Consumes k bytes of the first chunk (k <= what it has left). */
  private consume(k: number): void {
    this.head += k;
    this.total -= k;
    if (this.head === this.chunks[0].length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
