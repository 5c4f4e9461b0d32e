// An array controller (`serve NAME`) over TLS: with --tls require and a psktool key file, nbdcopy
// writes through it and qemu-img reads every byte back over TLS-PSK; a plain client is refused,
// and the controller says TLS in its serving line. `cluster` hands the TLS flags to every
// controller: each port refuses a plain nbdinfo and serves one over nbds:// with a client
// certificate (and refuses one without, under --tls-verify-peer).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { controllerArgs } from '../../cmd/verbs/cluster.js';
import { MiB, createArray, startController } from '../helpers/cluster.js';
import { clusterArray, createArray as createClusterArray } from '../../harness/raid-array.js';
import { runJson, runTool } from '../../harness/run-tool.js';
import { tempDir } from '../helpers/temp-dir.js';
import { makePki, makePskFile } from '../helpers/tls-pki.js';

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

t.test('cluster hands the TLS flags to every controller, paths made absolute', async (t) => {
  const args = { state: '/s', name: 'md0', controllers: 2, force: false, tls: 'require' as const, 'tls-psk': 'keys.psk', 'tls-verify-peer': false };
  t.same(controllerArgs(args, 1).slice(-4), ['--tls', 'require', '--tls-psk', path.resolve('keys.psk')]);
  const x509 = { ...args, 'tls-psk': undefined, 'tls-certificates': '/pki', 'tls-verify-peer': true };
  t.same(controllerArgs(x509, 0).slice(-5), ['--tls', 'require', '--tls-certificates', '/pki', '--tls-verify-peer']);
  t.same(controllerArgs({ ...args, tls: 'off' as const, 'tls-psk': undefined }, 0).filter((a) => a.startsWith('--tls')), [], 'no TLS flags when off');
});

t.test('cluster --tls require --tls-certificates --tls-verify-peer: every controller serves TLS only', async (t) => {
  const dir = tempDir(t);
  const pki = await makePki(path.join(dir, 'pki'));
  const arr = await createClusterArray({ dir, name: 'tc', members: 3, memberSize: '8M' });
  const proc = await clusterArray(t, arr, 2, ['--tls', 'require', '--tls-certificates', pki.dir, '--tls-verify-peer']);
  const sizes: number[] = [];
  for (const [i, port] of proc.ports.entries()) {
    const plain = await runTool('nbdinfo', [`nbd://127.0.0.1:${port}/${arr.name}`], { allowFailure: true, timeoutMs: 30_000 });
    t.not(plain.code, 0, `controller ${i}: a plain nbdinfo is refused`);
    t.match(plain.stderr, /TLS|not supported/i, `controller ${i}: and told why`);
    const info = await runJson<{ TLS: boolean; exports: { 'export-size': number }[] }>('nbdinfo', ['--json', `nbds://127.0.0.1:${port}/${arr.name}?tls-certificates=${pki.dir}`], { timeoutMs: 30_000 });
    t.equal(info.TLS, true, `controller ${i}: nbdinfo with a client certificate negotiates TLS`);
    sizes.push(info.exports[0]['export-size']);
    const anonymous = await runTool('nbdinfo', [`nbds://127.0.0.1:${port}/${arr.name}?tls-certificates=${pki.caOnly}`], { allowFailure: true, timeoutMs: 30_000 });
    t.not(anonymous.code, 0, `controller ${i}: a TLS client without a certificate is refused (--tls-verify-peer reached it)`);
  }
  t.ok(sizes[0] > 0 && sizes.every((x) => x === sizes[0]), `both controllers serve the one array over TLS (${sizes.join(', ')} bytes)`);
});
