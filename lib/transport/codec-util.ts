// Small big-endian helpers shared by the codec files: 64-bit values as JS numbers, strings.
import { NbdraidError } from '../errors.js';

const TWO_32 = 0x1_0000_0000;

/** Reads a u64 as a number; values above 2^53 lose precision but stay above any real size. */
export function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off) * TWO_32 + buf.readUInt32BE(off + 4);
}

/** Writes a non-negative safe integer as a u64. */
export function writeU64(buf: Buffer, off: number, value: number): void {
  buf.writeUInt32BE(Math.floor(value / TWO_32) >>> 0, off);
  buf.writeUInt32BE(value % TWO_32 >>> 0, off + 4);
}

export function protocolError(context: string, message: string): NbdraidError {
  return new NbdraidError('EPROTO', context, message);
}

/** A cursor over a message body; every read checks bounds and throws EPROTO on a short body. */
export class BodyReader {
  private pos = 0;

  constructor(private readonly buf: Buffer, private readonly context: string) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): number {
    this.need(8);
    const v = readU64(this.buf, this.pos);
    this.pos += 8;
    return v;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  string(n: number): string {
    return this.bytes(n).toString('utf8');
  }

  /** Throws unless the whole body was consumed. */
  end(): void {
    if (this.remaining !== 0) throw protocolError(this.context, `${this.remaining} unexpected trailing bytes`);
  }

  private need(n: number): void {
    if (n > this.remaining) throw protocolError(this.context, `body too short (need ${n}, have ${this.remaining})`);
  }
}

/** Single big-endian fields as buffers, for building bodies with Buffer.concat. */
export function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

export function u16(v: number): Buffer {
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(v, 0);
  return b;
}

export function u64(v: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, 0, v);
  return b;
}
