// `npm run bench -- parity`: the XOR kernels of lib/raid/parity-kernels.ts on Node buffers of the
// sizes the array uses (4 KiB requests, 64 KiB, a 512 KiB chunk, a 4 MiB background batch), and
// the WebAssembly kernel on data already in its own memory (what it would reach if buffers lived
// there). Each cell runs for BENCH_PARITY_SECONDS (default 1): GiB/s of dst XORed, and CPU seconds
// per GiB (process.cpuUsage). Prints the table and the kernel parity.ts uses; JSON under bench-results/.
import crypto from 'node:crypto';
import { KERNELS, type XorKernel } from '../../lib/raid/parity-kernels.js';
import { xorInto } from '../../lib/raid/parity.js';
import { wasmXor } from '../../lib/raid/xor-wasm.js';
import { saveResult, table } from './_common.js';

const SIZES = [4 << 10, 64 << 10, 512 << 10, 4 << 20];

interface Cell { kernel: string; size: number; gibPerSecond: number; cpuSecondsPerGiB: number }

function time(kernel: string, size: number, seconds: number, run: () => void): Cell {
  for (let i = 0; i < 8; i++) run(); // warm up (and let the optimizer see the loop)
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  let bytes = 0;
  const deadline = t0 + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < deadline) {
    for (let i = 0; i < 16; i++) run();
    bytes += 16 * size;
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  const gib = bytes / 2 ** 30;
  return { kernel, size, gibPerSecond: gib / wall, cpuSecondsPerGiB: (c.user + c.system) / 1e6 / gib };
}

function onBuffers(name: string, k: XorKernel, size: number, seconds: number): Cell {
  const dst = Buffer.from(crypto.randomBytes(size));
  const src = Buffer.from(crypto.randomBytes(size));
  return time(name, size, seconds, () => k(dst, src));
}

function inWasmMemory(size: number, seconds: number): Cell | null {
  const w = wasmXor(2 * size);
  if (!w) return null;
  w.memory.set(crypto.randomBytes(2 * size));
  return time('wasm-simd, data in its memory', size, seconds, () => w.xor(0, size, size));
}

const kib = (n: number): string => (n >= 1 << 20 ? `${n >> 20} MiB` : `${n >> 10} KiB`);

export async function run(): Promise<void> {
  const seconds = Number(process.env.BENCH_PARITY_SECONDS ?? 1);
  const cells: Cell[] = [];
  for (const size of SIZES) {
    for (const [name, k] of Object.entries(KERNELS)) cells.push(onBuffers(name, k, size, seconds));
    const w = inWasmMemory(size, seconds);
    if (w) cells.push(w);
  }
  const kernels = [...new Set(cells.map((c) => c.kernel))];
  const inUse = Object.entries(KERNELS).find(([, k]) => k === xorInto)?.[0] ?? '?';
  const head = ['kernel', ...SIZES.flatMap((s) => [`${kib(s)} GiB/s`, 'CPU s/GiB'])];
  const body = kernels.map((k) => [k, ...SIZES.flatMap((s) => {
    const c = cells.find((x) => x.kernel === k && x.size === s);
    return c ? [c.gibPerSecond.toFixed(2), c.cpuSecondsPerGiB.toFixed(3)] : ['-', '-'];
  })]);
  console.log(`parity kernels, ${seconds} s per cell; parity.ts uses: ${inUse}\n\n${table(head, body)}\n`);
  console.log(`results: ${await saveResult('parity', { secondsPerCell: seconds, inUse, cells })}`);
}
