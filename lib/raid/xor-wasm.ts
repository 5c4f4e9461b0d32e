// A WebAssembly XOR kernel assembled here from its instructions (no toolchain, no binary in the
// tree): xor(d, s, n) sets mem[d + i] ^= mem[s + i] for i < n, 64 bytes per iteration in four
// v128.xor, then byte by byte. It works only on its own linear memory, so a caller copies data in
// and out (or keeps the buffers there). null when this engine has no WebAssembly SIMD.

export interface WasmXor {
  /** The module's memory; never grown, so views of it stay valid. */
  readonly memory: Buffer;
  xor(d: number, s: number, n: number): void;
}

const uleb = (n: number): number[] => {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
};
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];
const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'latin1')];

// Opcodes used below.
const BLOCK = 0x02, LOOP = 0x03, BR = 0x0c, BR_IF = 0x0d, END = 0x0b, VOID = 0x40;
const GET = 0x20, SET = 0x21, I32_CONST = 0x41, I32_EQZ = 0x45, I32_LT_U = 0x49, I32_ADD = 0x6a, I32_SUB = 0x6b, I32_XOR = 0x73;
const I32_LOAD8_U = 0x2d, I32_STORE8 = 0x3a;
const SIMD = 0xfd, V128_LOAD = 0x00, V128_STORE = 0x0b, V128_XOR = 0x51;
const D = 0, S = 1, N = 2;

/** local[i] += k (k < 64, one-byte signed LEB) or -= k. */
const step = (local: number, k: number, op = I32_ADD): number[] => [GET, local, I32_CONST, k, op, SET, local];

function body(): number[] {
  const lanes: number[] = [];
  for (const off of [0, 16, 32, 48]) {
    // store(d + off, load(d + off) ^ load(s + off)); memarg: align 2^4, offset
    lanes.push(GET, D, GET, D, SIMD, V128_LOAD, 4, off, GET, S, SIMD, V128_LOAD, 4, off, SIMD, V128_XOR, SIMD, V128_STORE, 4, off);
  }
  const wide = [
    BLOCK, VOID, LOOP, VOID,
    GET, N, I32_CONST, 0xc0, 0x00, I32_LT_U, BR_IF, 1, // n < 64: out (64 as signed LEB)
    ...lanes,
    GET, D, I32_CONST, 0xc0, 0x00, I32_ADD, SET, D,
    GET, S, I32_CONST, 0xc0, 0x00, I32_ADD, SET, S,
    GET, N, I32_CONST, 0xc0, 0x00, I32_SUB, SET, N,
    BR, 0, END, END,
  ];
  const bytes = [
    BLOCK, VOID, LOOP, VOID,
    GET, N, I32_EQZ, BR_IF, 1,
    GET, D, GET, D, I32_LOAD8_U, 0, 0, GET, S, I32_LOAD8_U, 0, 0, I32_XOR, I32_STORE8, 0, 0,
    ...step(D, 1), ...step(S, 1), ...step(N, 1, I32_SUB),
    BR, 0, END, END,
  ];
  return [0, ...wide, ...bytes, END]; // no locals beyond the parameters
}

/** The module over a memory of its own (`pages`), or over one imported as env.mem (`imported`). */
function moduleBytes(pages: number, imported = false): Uint8Array {
  const fn = body();
  const I32 = 0x7f;
  const memory = imported
    ? section(2, [1, ...name('env'), ...name('mem'), 0x02, 0x00, ...uleb(pages)]) // import: at least `pages`
    : section(5, [1, 0x01, ...uleb(pages), ...uleb(pages)]); // memory: min = max = pages
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 3, I32, I32, I32, 0]), // type: (i32 i32 i32) -> ()
    ...(imported ? memory : []),
    ...section(3, [1, 0]), // function 0 has type 0
    ...(imported ? [] : memory),
    ...section(7, imported ? [1, ...name('xor'), 0x00, 0] : [2, ...name('xor'), 0x00, 0, ...name('mem'), 0x02, 0]),
    ...section(10, [1, ...uleb(fn.length), ...fn]),
  ]);
}

/** The part of the WebAssembly global used here (the compiler's libraries here do not declare it). */
interface Wasm {
  validate(code: Uint8Array): boolean;
  Module: new (code: Uint8Array) => object;
  Instance: new (module: object, imports?: object) => { exports: { xor(d: number, s: number, n: number): void; mem: { buffer: ArrayBuffer } } };
}

/** Instantiates the kernel over `bytes` of memory (a multiple of 64 KiB); null without SIMD. */
export function wasmXor(bytes: number): WasmXor | null {
  const wasm = (globalThis as unknown as { WebAssembly?: Wasm }).WebAssembly;
  const code = moduleBytes(Math.ceil(bytes / 65536));
  if (!wasm?.validate(code)) return null;
  const { exports } = new wasm.Instance(new wasm.Module(code));
  return { memory: Buffer.from(exports.mem.buffer), xor: exports.xor };
}

/**
 * The kernel over an existing WebAssembly.Memory (e.g. an AlignedPool's): xor(d, s, n) with byte
 * offsets into it, no copying. null without SIMD.
 */
export function wasmXorOver(memory: object, bytes: number): ((d: number, s: number, n: number) => void) | null {
  const wasm = (globalThis as unknown as { WebAssembly?: Wasm }).WebAssembly;
  const code = moduleBytes(Math.floor(bytes / 65536), true);
  if (!wasm?.validate(code)) return null;
  return new wasm.Instance(new wasm.Module(code), { env: { mem: memory } }).exports.xor;
}
