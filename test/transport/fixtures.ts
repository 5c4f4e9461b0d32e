// Shared pieces of the transport tests: an in-process server on a real socket (TCP or unix),
// a device whose requests wait until the test releases them, and a device that discards writes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { type BlockDevice, type BlockSizes, type Capabilities, DEFAULT_CAPABILITIES, type Extent } from '../../lib/transport/block-device.js';
import type { Address } from '../../lib/transport/client-handshake.js';
import type { ExportSpec } from '../../lib/transport/exports.js';
import { MemoryDevice } from '../../lib/transport/memory-device.js';
import { NbdServer, type NbdServerOptions } from '../../lib/transport/server.js';

export interface Teardown { teardown(fn: () => unknown): void }

export interface Running { server: NbdServer; addr: Address }

/** Starts a server on 127.0.0.1:0, or on a unix socket in a temp dir; closed at teardown. */
export async function startServer(
  t: Teardown, exports: ExportSpec[], opts: NbdServerOptions & { unix?: boolean } = {},
): Promise<Running> {
  const server = new NbdServer({ ...opts, exports });
  let addr: Address;
  if (opts.unix) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdraid-transport-'));
    addr = { path: path.join(dir, 'nbd.sock') };
    await server.listen(addr);
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  } else {
    const bound = (await server.listen({ host: '127.0.0.1', port: 0 })) as AddressInfo;
    addr = { host: '127.0.0.1', port: bound.port };
  }
  t.teardown(() => server.close());
  return { server, addr };
}

export function memoryExport(name: string, size = 1 << 20, extra: Partial<ExportSpec> = {}): ExportSpec {
  return { name, device: new MemoryDevice(size), ...extra };
}

/** A device with chosen block sizes and capabilities, delegating storage to a MemoryDevice. */
export function shapedDevice(size: number, blockSizes: BlockSizes, caps: Partial<Capabilities> = {}): BlockDevice {
  const inner = new MemoryDevice(size);
  return Object.assign(Object.create(inner) as BlockDevice, {
    blockSizes,
    capabilities: { ...inner.capabilities, ...caps },
  });
}

/**
 * Wraps a device so that reads and writes wait until release() lets them go, in whatever order
 * the test chooses; `waiting` shows which offsets are held.
 */
export class GatedDevice implements BlockDevice {
  private held: { offset: number; go: () => void }[] = [];
  open = false;

  constructor(readonly inner: BlockDevice) {}

  get size(): number { return this.inner.size; }
  get blockSizes(): BlockSizes { return this.inner.blockSizes; }
  get capabilities(): Capabilities { return this.inner.capabilities; }
  get waiting(): number[] { return this.held.map((h) => h.offset); }

  /** Lets the held request at `offset` (or all, and every later one) proceed. */
  release(offset?: number): void {
    if (offset === undefined) this.open = true;
    const go = this.held.filter((h) => offset === undefined || h.offset === offset);
    this.held = this.held.filter((h) => !go.includes(h));
    for (const h of go) h.go();
  }

  async read(offset: number, into: Buffer): Promise<void> {
    await this.gate(offset);
    return this.inner.read(offset, into);
  }

  async write(offset: number, data: Buffer): Promise<void> {
    await this.gate(offset);
    return this.inner.write(offset, data);
  }

  flush(): Promise<void> { return this.inner.flush(); }
  trim(o: number, l: number): Promise<void> { return this.inner.trim(o, l); }
  writeZeroes(o: number, l: number): Promise<void> { return this.inner.writeZeroes(o, l); }
  blockStatus(o: number, l: number): Promise<Extent[]> { return this.inner.blockStatus(o, l); }
  close(): Promise<void> { return this.inner.close(); }

  private gate(offset: number): Promise<void> {
    if (this.open) return Promise.resolve();
    return new Promise((go) => this.held.push({ offset, go }));
  }
}

/** Discards writes and reads zeroes: lets a test push hundreds of MiB without storing them. */
export class SinkDevice implements BlockDevice {
  readonly blockSizes: BlockSizes = { minimum: 1, preferred: 4096, maximum: 32 << 20 };
  readonly capabilities: Capabilities = { ...DEFAULT_CAPABILITIES };
  bytesWritten = 0;

  constructor(readonly size: number) {}

  async read(_o: number, into: Buffer): Promise<void> { into.fill(0); }
  async write(_o: number, data: Buffer): Promise<void> { this.bytesWritten += data.length; }
  async flush(): Promise<void> {}
  async trim(): Promise<void> {}
  async writeZeroes(): Promise<void> {}
  async blockStatus(_o: number, length: number): Promise<Extent[]> { return [{ length, flags: 0 }]; }
  async close(): Promise<void> {}
}

/** Polls `cond` every 10 ms until it holds; fails after `ms` (a bound, not a timing assertion). */
export async function until(cond: () => boolean, ms = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
