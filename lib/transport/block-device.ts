// BlockDevice: the one storage interface the NBD server serves (nbdkit's plugin, in TypeScript).
// A file, a memory buffer, a RAID member, a RAID volume and fault/delay wrappers all implement it.
// The server validates every request (range, alignment, flags, read-only) before calling in,
// so implementations may assume valid input. Failures are thrown as NbdraidError.

export interface Capabilities {
  readOnly: boolean;
  flush: boolean;
  fua: boolean;
  trim: boolean;
  zero: boolean;
  fastZero: boolean;
  cache: boolean;
  /** After a FLUSH or FUA reply on one connection, every connection sees the effect. */
  multiConn: boolean;
  blockStatus: boolean;
  rotational: boolean;
}

export interface BlockSizes {
  /** Power of two, at most 64 KiB. */
  minimum: number;
  /** Power of two, at least max(minimum, 512). */
  preferred: number;
  /** At least preferred. */
  maximum: number;
}

/** base:allocation flags. */
export const STATE_HOLE = 1;
export const STATE_ZERO = 2;

export interface Extent {
  length: number;
  /** STATE_HOLE | STATE_ZERO bits; 0 is always a safe answer. */
  flags: number;
}

export interface WriteOptions {
  fua?: boolean;
}

export interface ZeroOptions extends WriteOptions {
  /** The zeroed range may be left allocated (NBD's NO_HOLE asks to keep it allocated). */
  noHole?: boolean;
  /** Fail with ENOTSUP instead of zeroing slowly. */
  fastZero?: boolean;
}

export interface BlockDevice {
  /** Size in bytes (safe integer). */
  readonly size: number;
  readonly blockSizes: BlockSizes;
  readonly capabilities: Capabilities;
  /** Fills `into` entirely with the bytes at `offset`. */
  read(offset: number, into: Buffer): Promise<void>;
  write(offset: number, data: Buffer, opts?: WriteOptions): Promise<void>;
  /**
   * Background work's (rebuild, check, repair) read and write: same contract as read and write,
   * but the device may bypass its cache. Absent: read and write serve background work too.
   */
  readBackground?(offset: number, into: Buffer): Promise<void>;
  writeBackground?(offset: number, data: Buffer, opts?: WriteOptions): Promise<void>;
  /** Every write completed before this call is durable when it resolves. */
  flush(): Promise<void>;
  trim(offset: number, length: number, opts?: WriteOptions): Promise<void>;
  writeZeroes(offset: number, length: number, opts?: ZeroOptions): Promise<void>;
  /** Extents covering a prefix (at least one byte) of [offset, offset + length). */
  blockStatus(offset: number, length: number): Promise<Extent[]>;
  /** Optional read-ahead hint (NBD CACHE); a no-op is a valid implementation. */
  cache?(offset: number, length: number): Promise<void>;
  close(): Promise<void>;
}

export const DEFAULT_CAPABILITIES: Capabilities = {
  readOnly: false, flush: true, fua: true, trim: true, zero: true, fastZero: false,
  cache: true, multiConn: true, blockStatus: true, rotational: false,
};
