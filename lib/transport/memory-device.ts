// MemoryDevice: a sparse in-memory BlockDevice (pages allocated on first write), for tests and demos.
import {
  type BlockDevice, type BlockSizes, type Capabilities, type Extent, type WriteOptions, type ZeroOptions,
  DEFAULT_CAPABILITIES, STATE_HOLE, STATE_ZERO,
} from './block-device.js';

const PAGE = 64 * 1024;

export class MemoryDevice implements BlockDevice {
  readonly blockSizes: BlockSizes = { minimum: 1, preferred: 4096, maximum: 32 << 20 };
  readonly capabilities: Capabilities;
  private readonly pages = new Map<number, Buffer>();

  constructor(readonly size: number, opts: { readOnly?: boolean } = {}) {
    this.capabilities = { ...DEFAULT_CAPABILITIES, readOnly: !!opts.readOnly, fastZero: true };
  }

  async read(offset: number, into: Buffer): Promise<void> {
    this.forEachPage(offset, into.length, (page, pageOff, pos, n) => {
      if (page) page.copy(into, pos, pageOff, pageOff + n);
      else into.fill(0, pos, pos + n);
    });
  }

  async write(offset: number, data: Buffer, _opts?: WriteOptions): Promise<void> {
    this.forEachPage(offset, data.length, (_page, pageOff, pos, n, index) => {
      data.copy(this.page(index), pageOff, pos, pos + n);
    });
  }

  async flush(): Promise<void> {}

  async trim(offset: number, length: number, _opts?: WriteOptions): Promise<void> {
    await this.writeZeroes(offset, length);
  }

  /** Zeroes the range; whole pages are released (they read back as zeroes). */
  async writeZeroes(offset: number, length: number, _opts?: ZeroOptions): Promise<void> {
    this.forEachPage(offset, length, (page, pageOff, _pos, n, index) => {
      if (!page) return;
      if (n === PAGE) this.pages.delete(index);
      else page.fill(0, pageOff, pageOff + n);
    });
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    const out: Extent[] = [];
    this.forEachPage(offset, length, (page, _pageOff, _pos, n) => {
      const flags = page ? 0 : STATE_HOLE | STATE_ZERO;
      const last = out[out.length - 1];
      if (last && last.flags === flags) last.length += n;
      else out.push({ length: n, flags });
    });
    return out;
  }

  async close(): Promise<void> {}

  private page(index: number): Buffer {
    let page = this.pages.get(index);
    if (!page) {
      page = Buffer.alloc(PAGE);
      this.pages.set(index, page);
    }
    return page;
  }

  private forEachPage(
    offset: number, length: number,
    fn: (page: Buffer | undefined, pageOff: number, pos: number, n: number, index: number) => void,
  ): void {
    for (let pos = 0; pos < length;) {
      const index = Math.floor((offset + pos) / PAGE);
      const pageOff = (offset + pos) % PAGE;
      const n = Math.min(PAGE - pageOff, length - pos);
      fn(this.pages.get(index), pageOff, pos, n, index);
      pos += n;
    }
  }
}
