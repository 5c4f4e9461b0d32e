// A client that keeps a ledger of what was acknowledged: writes block i (seeded content, FUA) at
// OFFSET + i * BLOCK through one NBD URI, one at a time, and prints `ack i` once the server
// acknowledged it. It stops after COUNT blocks, after MAX_SECONDS, or at the first failure
// (printing `error MESSAGE`); a test then checks that every acknowledged block reads back.
//   node acked-writer.js URI OFFSET BLOCK COUNT SEED MAX_SECONDS
// With VERIFY=1 in the environment it reads blocks 0..COUNT-1 instead, printing `bad i` for each
// that differs from what the writer wrote, then `verified COUNT`.
import { NbdClient } from '../../../lib/transport/client.js';
import { parseNbdUri } from '../../../lib/transport/nbd-uri.js';
import { seededBytes } from '../../helpers/prng.js';

async function main(): Promise<void> {
  const [uri, offset, block, count, seed, maxSeconds] = process.argv.slice(2);
  const target = parseNbdUri(uri);
  const until = Date.now() + Number(maxSeconds) * 1000;
  const client = await NbdClient.connect({ ...target.address, exportName: target.exportName });
  process.stdout.write('connected\n');
  try {
    if (process.env.VERIFY === '1') {
      for (let i = 0; i < Number(count); i++) {
        const got = await client.read(Number(offset) + i * Number(block), Number(block));
        if (!got.equals(seededBytes(Number(block), Number(seed) + i))) process.stdout.write(`bad ${i}\n`);
      }
      process.stdout.write(`verified ${count}\n`);
      return;
    }
    for (let i = 0; i < Number(count) && Date.now() < until; i++) {
      await client.write(Number(offset) + i * Number(block), seededBytes(Number(block), Number(seed) + i), { fua: true });
      process.stdout.write(`ack ${i}\n`);
    }
    process.stdout.write('done\n');
  } finally {
    client.close();
  }
}

main().catch((err: unknown) => {
  process.stdout.write(`error ${(err as Error).message}\n`);
  process.exit(0);
});
