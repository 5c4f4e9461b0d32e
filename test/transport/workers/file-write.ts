// Child for the short-write tests: one FileDevice write of LENGTH bytes of BYTE at OFFSET into
// PATH, under whatever limit or syscall injection the parent started it with. Prints one JSON line.
import { FileDevice } from '../../../lib/transport/file-device.js';
import { NbdraidError } from '../../../lib/errors.js';

const [file, offset, length, byte] = process.argv.slice(2);
const dev = await FileDevice.open(file);
try {
  await dev.write(Number(offset), Buffer.alloc(Number(length), Number(byte)));
  console.log(JSON.stringify({ ok: true }));
} catch (err) {
  const e = err as NbdraidError;
  console.log(JSON.stringify({ ok: false, code: e.code, message: e.message }));
} finally {
  await dev.close();
}
