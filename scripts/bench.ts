// `npm run bench -- NAME...`: runs the named benchmarks (scripts/bench/NAME.ts), each printing a
// table and writing JSON under bench-results/. With no name, lists them.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = join(dirname(fileURLToPath(import.meta.url)), 'bench');

async function main(): Promise<void> {
  const available = readdirSync(here).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3)).filter((n) => !n.startsWith('_'));
  const names = process.argv.slice(2);
  if (names.length === 0) {
    console.log(`usage: npm run bench -- <${available.join('|')}>...`);
    return;
  }
  for (const name of names) {
    if (!available.includes(name)) throw new Error(`no benchmark '${name}'; available: ${available.join(', ')}`);
    const mod = (await import(join(here, `${name}.js`))) as { run(): Promise<void> };
    await mod.run();
  }
}

main().catch((err: unknown) => {
  console.error(`bench: ${(err as Error).message}`);
  process.exit(1);
});
