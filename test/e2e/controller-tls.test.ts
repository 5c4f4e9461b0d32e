// An array controller (`serve NAME`) over TLS: with --tls require and a psktool key file, nbdcopy
// writes through it and qemu-img reads every byte back over TLS-PSK; a plain client is refused,
// and the controller says TLS in its serving line.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { MiB, createArray, startController } from '../helpers/cluster.js';
import { runTool } from '../helpers/run-tool.js';
import { tempDir } from '../helpers/temp-dir.js';
import { makePskFile } from '../helpers/tls-pki.js';

t.test('serve NAME --tls require --tls-psk: real clients over TLS, a plain one refused', async (t) => {
  const dir = tempDir(t);
  const arr = await createArray(dir, { memberSize: 16 * MiB, members: 4 });
  const pskDir = path.join(dir, 'psk');
  fs.mkdirSync(pskDir);
  const keys = makePskFile(path.join(pskDir, 'keys.psk'), ['alice']);
  const c = await startController(t, arr, ['--tls', 'require', '--tls-psk', keys]);
  t.match(c.stderr(), /TLS require with PSK.* on nbds:\/\//, 'the controller says it serves TLS only');

  const source = path.join(dir, 'source.img');
  fs.writeFileSync(source, randomBytes(8 * MiB));
  const uri = `nbds://alice@127.0.0.1:${c.port}/${arr.name}?tls-psk-file=${keys}`;
  await runTool('nbdcopy', [source, uri], { timeoutMs: 60_000 });
  const back = path.join(dir, 'back.img');
  const creds = `tls-creds-psk,id=tls0,endpoint=client,dir=${pskDir},username=alice`;
  const opts = `driver=nbd,host=127.0.0.1,port=${c.port},export=${arr.name},tls-creds=tls0`;
  await runTool('qemu-img', ['convert', '--object', creds, '--image-opts', opts, '-O', 'raw', back], { timeoutMs: 60_000 });
  const got = fs.readFileSync(back);
  t.ok(got.subarray(0, 8 * MiB).equals(fs.readFileSync(source)), 'qemu-img read back over TLS what nbdcopy wrote over TLS');

  const plain = await runTool('nbdinfo', [`nbd://127.0.0.1:${c.port}/${arr.name}`], { allowFailure: true, timeoutMs: 30_000 });
  t.not(plain.code, 0, 'a plain client is refused');
  t.match(plain.stderr, /TLS|not supported/i, 'and told why');
});
