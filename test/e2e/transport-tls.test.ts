// NBD over TLS (STARTTLS) between `nbdraid serve --file` and real clients: nbdinfo, nbdcopy and
// qemu-img over nbds:// and --image-opts with tls-creds, with X.509 certificates (made by openssl
// here) and with a psktool-format PSK file. Wrong keys, untrusted certificates and missing client
// certificates are refused; under --tls require a plain client gets NBD_REP_ERR_TLS_REQD (checked
// byte for byte with our own handshake client) and EXPORT_NAME closes; --tls on serves both.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ClientHandshake } from '../../lib/transport/client-handshake.js';
import { NbdClient } from '../../lib/transport/client.js';
import { OPT_ABORT, OPT_GO, OPT_INFO, OPT_LIST, OPT_STRUCTURED_REPLY, REP_ACK, REP_ERR_TLS_REQD } from '../../lib/transport/constants.js';
import { encodeInfoRequest } from '../../lib/transport/codec-handshake.js';
import { loadClientTls } from '../../lib/transport/tls.js';
import { waitUntil } from '../helpers/deadline.js';
import { runJson, runTool } from '../../harness/run-tool.js';
import { type ServerProcess, startNbdraidServe } from '../../harness/server-process.js';
import { sparseImage, tempDir } from '../helpers/temp-dir.js';
import { makePki, makePskFile } from '../helpers/tls-pki.js';

const SIZE = 64 << 20;
const MiB = 1 << 20;

interface NbdinfoReport { protocol: string; TLS: boolean; exports: { 'export-size': number }[] }

const dir = tempDir(t);

function serveTls(tt: Test, file: string, tlsArgs: string[]): Promise<ServerProcess> {
  const args = ['--file', file, '--export', 'disk', '--state', path.join(dir, 'state'), ...tlsArgs];
  return startNbdraidServe(tt, { args, exportName: 'disk' });
}

function nbds(server: ServerProcess, query: string, user = ''): string {
  return `nbds://${user ? `${user}@` : ''}127.0.0.1:${server.port}/disk?${query}`;
}

/** A source image with random data at the start, in the middle and at the end. */
function sourceImage(name: string): string {
  const file = sparseImage(dir, name, SIZE);
  const fd = fs.openSync(file, 'r+');
  for (const at of [0, 20 * MiB, SIZE - MiB]) fs.writeSync(fd, randomBytes(MiB), 0, MiB, at);
  fs.closeSync(fd);
  return file;
}

function sameBytes(a: string, b: string): boolean {
  return fs.readFileSync(a).equals(fs.readFileSync(b));
}

async function refused(tt: Test, cmd: string, args: string[], what: string): Promise<string> {
  const r = await runTool(cmd, args, { allowFailure: true, timeoutMs: 30_000 });
  tt.not(r.code, 0, what);
  return r.stderr;
}

t.test('X.509: nbdinfo, nbdcopy and qemu-img over TLS; untrusted CA and plain clients refused', async (tt) => {
  const pki = await makePki(path.join(dir, 'pki'));
  const other = await makePki(path.join(dir, 'other-pki'));
  const target = sparseImage(dir, 'x509.img', SIZE);
  const server = await serveTls(tt, target, ['--tls', 'require', '--tls-certificates', pki.dir]);
  tt.match(server.stderr(), /TLS require with X\.509 certificates\) on nbds:\/\//, 'serve says TLS is required');

  const info = await runJson<NbdinfoReport>('nbdinfo', ['--json', nbds(server, `tls-certificates=${pki.caOnly}`)]);
  tt.same({ protocol: info.protocol, TLS: info.TLS, size: info.exports[0]['export-size'] },
    { protocol: 'newstyle-fixed', TLS: true, size: SIZE }, 'nbdinfo negotiates TLS and sees the export');

  const source = sourceImage('x509-source.img');
  await runTool('nbdcopy', [source, nbds(server, `tls-certificates=${pki.dir}`)]);
  tt.ok(sameBytes(source, target), 'nbdcopy wrote every byte through TLS into the served file');

  const creds = `tls-creds-x509,id=tls0,endpoint=client,dir=${pki.caOnly}`;
  const opts = `driver=nbd,host=127.0.0.1,port=${server.port},export=disk,tls-creds=tls0`;
  const back = path.join(dir, 'x509-back.img');
  await runTool('qemu-img', ['convert', '--object', creds, '--image-opts', opts, '-O', 'raw', back]);
  tt.ok(sameBytes(source, back), 'qemu-img read every byte back through TLS');

  const untrusted = await refused(tt, 'nbdinfo', [nbds(server, `tls-certificates=${other.caOnly}`)], 'a client trusting another CA is refused');
  tt.match(untrusted, /certificate|verif|handshake/i, 'libnbd says the certificate did not verify');
  const qemuUntrusted = await refused(tt, 'qemu-img', ['info', '--object', `tls-creds-x509,id=tls0,endpoint=client,dir=${other.caOnly}`, '--image-opts', opts],
    'qemu-img trusting another CA is refused');
  tt.match(qemuUntrusted, /certificate|verif/i, 'qemu says the certificate did not verify');

  const plain = await refused(tt, 'nbdinfo', [`nbd://127.0.0.1:${server.port}/disk`], 'a plain nbdinfo is refused');
  tt.match(plain, /TLS|not supported/i, 'nbdinfo reports the refusal');
  tt.equal(fs.readFileSync(target).equals(fs.readFileSync(source)), true, 'refused clients changed nothing');
});

t.test('X.509 with --tls-verify-peer: a client certificate signed by the CA is needed', async (tt) => {
  const pki = await makePki(path.join(dir, 'peer-pki'), 'nbdraid peer CA');
  const other = await makePki(path.join(dir, 'peer-other'), 'nbdraid peer CA');
  // A client trusting the server's CA, holding a certificate of another CA of the same name.
  const foreign = path.join(dir, 'foreign-client');
  fs.mkdirSync(foreign);
  fs.copyFileSync(path.join(pki.dir, 'ca-cert.pem'), path.join(foreign, 'ca-cert.pem'));
  for (const f of ['client-cert.pem', 'client-key.pem']) fs.copyFileSync(path.join(other.dir, f), path.join(foreign, f));
  const server = await serveTls(tt, sparseImage(dir, 'peer.img', SIZE), ['--tls', 'require', '--tls-certificates', pki.dir, '--tls-verify-peer']);

  const info = await runJson<NbdinfoReport>('nbdinfo', ['--json', nbds(server, `tls-certificates=${pki.dir}`)]);
  tt.equal(info.TLS, true, 'a client with a certificate from the CA is served');
  await refused(tt, 'nbdinfo', [nbds(server, `tls-certificates=${pki.caOnly}`)], 'a client without a certificate is refused');
  await refused(tt, 'nbdinfo', [nbds(server, `tls-certificates=${foreign}`)], 'a client certificate of another CA is refused');
  await tt.rejects(NbdClient.connect({ port: server.port as number, exportName: 'disk', tls: loadClientTls({ certificates: foreign }) }),
    'our own client with a certificate of another CA is refused');
  const refusals = /dropped: TLS: client certificate refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/g;
  await waitUntil(() => server.stderr().match(refusals)?.length === 2, 10_000, 'two refusals logged');
  tt.match(server.stderr(), /127\.0\.0\.1 dropped: TLS: peer did not return a certificate/, 'the server logs the missing certificate');
  tt.equal(server.stderr().match(refusals)?.length, 2, 'and the certificates of the other CA, from nbdinfo and from our client');

  const ours = await NbdClient.connect({ port: server.port as number, exportName: 'disk', tls: loadClientTls({ certificates: pki.dir }) });
  tt.equal(ours.size, SIZE, 'our own client presents its certificate too');
  await ours.disconnect();
});

t.test('PSK: nbdinfo, nbdcopy and qemu-img with a psktool key file; wrong keys refused', async (tt) => {
  const pskDir = path.join(dir, 'psk');
  fs.mkdirSync(pskDir);
  // qemu's tls-creds-psk reads DIR/keys.psk.
  const keys = makePskFile(path.join(pskDir, 'keys.psk'), ['alice', 'bob']);
  const target = sparseImage(dir, 'psk.img', SIZE);
  const server = await serveTls(tt, target, ['--tls', 'require', '--tls-psk', keys]);
  tt.match(server.stderr(), /TLS require with PSK/, 'serve says PSK');

  const info = await runJson<NbdinfoReport>('nbdinfo', ['--json', nbds(server, `tls-psk-file=${keys}`, 'alice')]);
  tt.same({ TLS: info.TLS, size: info.exports[0]['export-size'] }, { TLS: true, size: SIZE }, 'nbdinfo as alice over TLS-PSK');

  const source = sourceImage('psk-source.img');
  await runTool('nbdcopy', [source, nbds(server, `tls-psk-file=${keys}`, 'bob')]);
  tt.ok(sameBytes(source, target), 'nbdcopy as bob wrote every byte');

  const creds = `tls-creds-psk,id=tls0,endpoint=client,dir=${pskDir},username=alice`;
  const opts = `driver=nbd,host=127.0.0.1,port=${server.port},export=disk,tls-creds=tls0`;
  const back = path.join(dir, 'psk-back.img');
  await runTool('qemu-img', ['convert', '--object', creds, '--image-opts', opts, '-O', 'raw', back]);
  tt.ok(sameBytes(source, back), 'qemu-img read every byte back over TLS-PSK');

  const wrong = makePskFile(path.join(dir, 'wrong.psk'), ['alice']);
  await refused(tt, 'nbdinfo', [nbds(server, `tls-psk-file=${wrong}`, 'alice')], 'alice with the wrong key is refused');
  const stranger = makePskFile(path.join(dir, 'stranger.psk'), ['mallory']);
  await refused(tt, 'nbdinfo', [nbds(server, `tls-psk-file=${stranger}`, 'mallory')], 'an unknown username is refused');
  const wrongDir = path.join(dir, 'wrong-psk');
  fs.mkdirSync(wrongDir);
  fs.copyFileSync(wrong, path.join(wrongDir, 'keys.psk'));
  await refused(tt, 'qemu-img', ['info', '--object', `tls-creds-psk,id=tls0,endpoint=client,dir=${wrongDir},username=alice`, '--image-opts', opts],
    'qemu-img with the wrong key is refused');
  await waitUntil(() => (server.stderr().match(/dropped: TLS: /g)?.length ?? 0) >= 3, 10_000, 'three failed handshakes logged');
  tt.match(server.stderr(), /dropped: TLS: .*binder does not verify/, 'a wrong key fails the TLS 1.3 PSK binder check');

  const ours = await NbdClient.connect({ port: server.port as number, exportName: 'disk', tls: loadClientTls({ pskFile: keys, pskUsername: 'bob' }) });
  const data = await ours.read(20 * MiB, 4096);
  tt.ok(data.equals(fs.readFileSync(source).subarray(20 * MiB, 20 * MiB + 4096)), 'our own client reads over TLS-PSK');
  await ours.disconnect();
});

t.test('--tls require: exact refusals of a plain client', async (tt) => {
  const keys = makePskFile(path.join(dir, 'req.psk'), ['alice']);
  const server = await serveTls(tt, sparseImage(dir, 'req.img', SIZE), ['--tls', 'require', '--tls-psk', keys]);
  const port = server.port as number;
  const hs = await ClientHandshake.open({ port });
  for (const [option, data] of [[OPT_LIST, undefined], [OPT_STRUCTURED_REPLY, undefined], [OPT_INFO, encodeInfoRequest('disk', [])],
    [OPT_GO, encodeInfoRequest('disk', [])], [99, undefined]] as const) {
    const replies = await hs.option(option, data);
    tt.equal(replies.length, 1, `option ${option}: one reply`);
    tt.equal(replies[0].type, REP_ERR_TLS_REQD, `option ${option}: NBD_REP_ERR_TLS_REQD`);
    tt.match(replies[0].data.toString(), /requires TLS: send STARTTLS first/, `option ${option}: the message says what to do`);
  }
  const abort = await hs.option(OPT_ABORT);
  tt.same(abort.map((r) => r.type), [REP_ACK], 'ABORT is still acknowledged (the spec exempts it)');
  hs.close();

  const old = await ClientHandshake.open({ port });
  await tt.rejects(old.exportName('disk'), /connection closed/, 'EXPORT_NAME without TLS closes the connection (no error reply exists for it)');
  old.close();
});

t.test('--tls on: plain and TLS clients are both served', async (tt) => {
  const pki = await makePki(path.join(dir, 'on-pki'));
  const server = await serveTls(tt, sparseImage(dir, 'on.img', SIZE), ['--tls', 'on', '--tls-certificates', pki.dir]);
  const plain = await runJson<NbdinfoReport>('nbdinfo', ['--json', `nbd://127.0.0.1:${server.port}/disk`]);
  tt.same({ TLS: plain.TLS, size: plain.exports[0]['export-size'] }, { TLS: false, size: SIZE }, 'a plain client is served in plain text');
  const secure = await runJson<NbdinfoReport>('nbdinfo', ['--json', nbds(server, `tls-certificates=${pki.caOnly}`)]);
  tt.same({ TLS: secure.TLS, size: secure.exports[0]['export-size'] }, { TLS: true, size: SIZE }, 'a TLS client is served over TLS');
});
