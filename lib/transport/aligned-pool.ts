// AlignedPool: buffers whose address and length are multiples of 4 KiB, as O_DIRECT needs. A Node
// Buffer's memory has no alignment guarantee (a large allocUnsafeSlow lands 16 bytes past a page),
// but a WebAssembly.Memory's backing store is page aligned, so views into one at 4 KiB multiples
// are aligned. The pool is one fixed Memory, never grown (growing would detach every view handed
// out), carved into size classes; when it has no room a plain Buffer is handed out instead, which
// a device then serves through its page cache. Bounded: idle buffers live inside the one Memory.

export const ALIGN = 4096;

const WASM_PAGE = 65536;

/** The part of the WebAssembly global used here (the compiler's libraries here do not declare it). */
interface WasmMemory { readonly buffer: ArrayBuffer }
interface Wasm { Memory: new (d: { initial: number; maximum: number }) => WasmMemory }

/** Backing stores known to start on a page boundary. */
const pageAligned = new WeakSet<ArrayBufferLike>();

/** True when `buf`'s address and length are multiples of ALIGN. */
export function isAligned(buf: Buffer): boolean {
  return pageAligned.has(buf.buffer) && buf.byteOffset % ALIGN === 0 && buf.length % ALIGN === 0;
}

export interface AlignedPoolStats {
  /** Handed out from the pool's memory (new or reused). */
  aligned: number;
  /** Handed out as plain Buffers because the pool had no room. */
  plain: number;
  outstanding: number;
}

export class AlignedPool {
  /** The pool's memory (a view of the whole Memory): buffers from take() are views of it. */
  readonly memory: Buffer;
  /** The WebAssembly.Memory itself, for code that works on the buffers in place (a wasm kernel). */
  readonly wasmMemory: object;
  private readonly idle = new Map<number, number[]>();
  /** View handed out -> [its offset, its class size]. */
  private readonly out = new WeakMap<Buffer, [number, number]>();
  private next = 0;
  readonly stats: AlignedPoolStats = { aligned: 0, plain: 0, outstanding: 0 };

  /** `bytes` of aligned memory (rounded up to 64 KiB); null when this engine has no WebAssembly. */
  static create(bytes: number): AlignedPool | null {
    const wasm = (globalThis as unknown as { WebAssembly?: Wasm }).WebAssembly;
    if (!wasm) return null;
    const pages = Math.max(1, Math.ceil(bytes / WASM_PAGE));
    return new AlignedPool(new wasm.Memory({ initial: pages, maximum: pages }));
  }

  private constructor(memory: WasmMemory) {
    this.wasmMemory = memory;
    pageAligned.add(memory.buffer);
    this.memory = Buffer.from(memory.buffer);
  }

  /** Exactly `size` bytes, aligned when the pool has room; give() it back when no I/O uses it. */
  take(size: number): Buffer {
    const cls = Math.max(ALIGN, Math.ceil(size / ALIGN) * ALIGN);
    let at = this.idle.get(cls)?.pop();
    if (at === undefined && this.stats.outstanding === 0 && this.next + cls > this.memory.length) this.reset();
    if (at === undefined && this.next + cls <= this.memory.length) {
      at = this.next;
      this.next += cls;
    }
    if (at === undefined) {
      this.stats.plain++;
      return Buffer.allocUnsafeSlow(size);
    }
    const view = this.memory.subarray(at, at + size);
    this.out.set(view, [at, cls]);
    this.stats.aligned++;
    this.stats.outstanding++;
    return view;
  }

  /** Returns a buffer from take(); a plain one, or one given twice, is ignored. */
  give(buf: Buffer): void {
    const slot = this.out.get(buf);
    if (!slot) return;
    this.out.delete(buf);
    this.stats.outstanding--;
    const list = this.idle.get(slot[1]);
    if (list) list.push(slot[0]);
    else this.idle.set(slot[1], [slot[0]]);
  }

  /** With nothing out, the memory is carved afresh (the sizes asked for have changed). */
  private reset(): void {
    this.idle.clear();
    this.next = 0;
  }
}
