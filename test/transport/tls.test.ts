// STARTTLS in-process: the option rules of the spec (handleOption, pure), a server and our own
// client over loopback with X.509 and PSK, the state STARTTLS forgets, bytes smuggled in after
// STARTTLS, a client that will not downgrade, a real TLS server (nbdkit) for our client, and the
// clear errors for bad TLS flags and credentials (library and `serve`).
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { ClientHandshake, OptionError } from '../../lib/transport/client-handshake.js';
import { NbdClient } from '../../lib/transport/client.js';
import { encodeClientFlags, encodeOption } from '../../lib/transport/codec-handshake.js';
import {
  FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, OPT_GO, OPT_LIST, OPT_STARTTLS, OPT_STRUCTURED_REPLY, REP_ACK, REP_ERR_INVALID,
  REP_ERR_POLICY, REP_ERR_TLS_REQD, REP_SERVER,
} from '../../lib/transport/constants.js';
import { decodeOptionReplyHeader } from '../../lib/transport/codec-handshake.js';
import { ExportRegistry } from '../../lib/transport/exports.js';
import { HandshakeState, acceptClientFlags, handleOption } from '../../lib/transport/handshake.js';
import { MemoryDevice } from '../../lib/transport/memory-device.js';
import { type ServerTlsConfig, loadClientTls, loadServerTls, readPskFile } from '../../lib/transport/tls.js';
import { withDeadline } from '../helpers/deadline.js';
import { runTool } from '../../harness/run-tool.js';
import { nbdraidCli } from '../../harness/server-process.js';
import { spawnServer, startReady } from '../../harness/spawn-ready.js';
import { tempDir } from '../helpers/temp-dir.js';
import { makePki, makePskFile } from '../helpers/tls-pki.js';
import { startServer } from './fixtures.js';
import net from 'node:net';

const dir = tempDir(t, 'nbdraid-tls-');

function registry(): ExportRegistry {
  const r = new ExportRegistry();
  r.add({ name: 'disk', device: new MemoryDevice(1 << 20) });
  return r;
}

function replyType(b: Buffer): number {
  return decodeOptionReplyHeader(b).type;
}

t.test('handleOption: STARTTLS as the spec has it', async (tt) => {
  const exports = registry();
  const fresh = (): HandshakeState => {
    const s = new HandshakeState();
    acceptClientFlags(s, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    return s;
  };
  const off = handleOption(fresh(), { exports, shuttingDown: false }, OPT_STARTTLS, Buffer.alloc(0));
  tt.same([off.next, off.replies.map(replyType)], ['options', [REP_ERR_POLICY]], 'off: ERR_POLICY');

  const on = { exports, shuttingDown: false, tls: 'on' as const };
  const s = fresh();
  handleOption(s, on, OPT_STRUCTURED_REPLY, Buffer.alloc(0));
  tt.equal(s.structured, true, 'structured replies negotiated before STARTTLS');
  const withData = handleOption(s, on, OPT_STARTTLS, Buffer.from('x'));
  tt.same(withData.replies.map(replyType), [REP_ERR_INVALID], 'STARTTLS with data: ERR_INVALID');
  const ok = handleOption(s, on, OPT_STARTTLS, Buffer.alloc(0));
  tt.same([ok.next, ok.replies.map(replyType)], ['starttls', [REP_ACK]], 'STARTTLS: ACK, then the upgrade');
  tt.same({ tls: s.tls, structured: s.structured }, { tls: true, structured: false }, 'everything negotiated before is forgotten');
  const again = handleOption(s, on, OPT_STARTTLS, Buffer.alloc(0));
  tt.same([again.next, again.replies.map(replyType)], ['options', [REP_ERR_INVALID]], 'a second STARTTLS: ERR_INVALID');

  const notFixed = new HandshakeState();
  acceptClientFlags(notFixed, 0);
  tt.same(handleOption(notFixed, on, OPT_STARTTLS, Buffer.alloc(0)).replies.map(replyType), [REP_ERR_POLICY],
    'no TLS without fixed newstyle');

  const req = { exports, shuttingDown: false, tls: 'require' as const };
  const r = fresh();
  tt.same(handleOption(r, req, OPT_LIST, Buffer.alloc(0)).replies.map(replyType), [REP_ERR_TLS_REQD], 'require: LIST gets ERR_TLS_REQD');
  tt.same(handleOption(r, req, 1, Buffer.from('disk')), { next: 'close', replies: [] }, 'require: EXPORT_NAME closes');
  handleOption(r, req, OPT_STARTTLS, Buffer.alloc(0));
  const listed = handleOption(r, req, OPT_LIST, Buffer.alloc(0));
  tt.same(listed.replies.map(replyType), [REP_SERVER, REP_ACK], 'after STARTTLS nothing gets ERR_TLS_REQD');
});

t.test('server and our client over loopback', async (tt) => {
  const pki = await makePki(path.join(dir, 'pki'));
  const other = await makePki(path.join(dir, 'other'));
  const keys = makePskFile(path.join(dir, 'keys.psk'), ['alice', 'bob']);
  const device = new MemoryDevice(1 << 20);
  const x509 = await startServer(tt, [{ name: 'disk', device }], { tls: loadServerTls({ mode: 'on', certificates: pki.dir }) });
  const psk = await startServer(tt, [{ name: 'disk', device }], { tls: loadServerTls({ mode: 'require', pskFile: keys }) });
  const logs: string[] = [];
  const off = await startServer(tt, [{ name: 'disk', device }], { log: (m) => logs.push(m) });

  tt.test('X.509: write and read back over TLS; a plain client is served too (on)', async (t2) => {
    const c = await NbdClient.connect({ ...x509.addr, exportName: 'disk', tls: loadClientTls({ certificates: pki.caOnly }) });
    await c.write(4096, Buffer.from('over tls'), { fua: true });
    t2.equal((await c.read(4096, 8)).toString(), 'over tls');
    await c.disconnect();
    const plain = await NbdClient.connect({ ...x509.addr, exportName: 'disk' });
    t2.equal((await plain.read(4096, 8)).toString(), 'over tls', 'plain client reads what the TLS one wrote');
    await plain.disconnect();
  });

  tt.test('PSK: each username with its key', async (t2) => {
    for (const user of ['alice', 'bob']) {
      const c = await NbdClient.connect({ ...psk.addr, exportName: 'disk', tls: loadClientTls({ pskFile: keys, pskUsername: user }) });
      t2.equal(c.size, 1 << 20, `${user} connects`);
      await c.disconnect();
    }
    const wrong = makePskFile(path.join(dir, 'wrong.psk'), ['alice']);
    await t2.rejects(NbdClient.connect({ ...psk.addr, exportName: 'disk', tls: loadClientTls({ pskFile: wrong }) }),
      /nbd client tls: TLS handshake failed/, 'the wrong key fails the handshake');
  });

  tt.test('STARTTLS forgets structured replies negotiated before it', async (t2) => {
    const hs = await ClientHandshake.open(x509.addr);
    await hs.structuredReply();
    await hs.startTls(loadClientTls({ certificates: pki.caOnly }), '127.0.0.1');
    t2.equal(hs.tls, true);
    await hs.structuredReply(); // refused as "already negotiated" had the server kept it
    t2.pass('structured replies negotiated again over TLS');
    const c = await hs.go('disk');
    t2.equal(c.structured, true);
    await c.disconnect();
  });

  tt.test('our client does not downgrade, nor trust another CA', async (t2) => {
    const refused = NbdClient.connect({ ...off.addr, exportName: 'disk', tls: loadClientTls({ certificates: pki.caOnly }) });
    const err = await refused.then(() => null, (e: unknown) => e);
    t2.ok(err instanceof OptionError, 'a server without TLS: connect fails with the option error');
    t2.equal((err as OptionError).replyType, REP_ERR_POLICY, 'the server\'s ERR_POLICY');
    await t2.rejects(NbdClient.connect({ ...x509.addr, exportName: 'disk', tls: loadClientTls({ certificates: other.caOnly }) }),
      /TLS handshake failed: .*(certificate|verify)/i, 'a server certificate of another CA is refused');
  });

  tt.test('bytes sent after STARTTLS before its reply drop the connection', async (t2) => {
    const tls = await startServer(t2, [{ name: 'disk', device }], { tls: loadServerTls({ mode: 'on', certificates: pki.dir }), log: (m) => logs.push(m) });
    const sock = net.connect((tls.addr as { port: number }).port, '127.0.0.1');
    let got = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => { got = Buffer.concat([got, d]); });
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.on('error', () => {});
    // Flags, STARTTLS, and then a plain-text option that must not be taken as if sent over TLS.
    sock.write(Buffer.concat([encodeClientFlags(FLAG_FIXED_NEWSTYLE), encodeOption(OPT_STARTTLS), encodeOption(OPT_GO)]));
    await withDeadline(closed, 10_000, 'server dropping the connection');
    t2.equal(got.length, 18, 'only the greeting was sent: no ACK, no TLS');
    t2.equal(tls.server.stats.protocolErrors, 1);
    t2.match(logs.join('\n'), /dropped: client sent data after STARTTLS before its reply/);
  });
});

t.test('our client against a real TLS server (nbdkit --tls=require)', async (tt) => {
  const pki = await makePki(path.join(dir, 'nbdkit-pki'));
  const keys = makePskFile(path.join(dir, 'nbdkit.psk'), ['carol']);
  for (const [what, tlsArgs, creds] of [
    ['X.509', [`--tls-certificates=${pki.dir}`], { certificates: pki.dir }],
    ['PSK', [`--tls-psk=${keys}`], { pskFile: keys }],
  ] as const) {
    const { endpoints: [{ port }] } = await startReady(tt, {
      name: `nbdkit --tls=require (${what})`,
      launch: ([e]) => spawnServer('nbdkit', ['-f', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(e.port), '--tls=require', ...tlsArgs, 'memory', '1M']),
    });
    const c = await NbdClient.connect({ host: '127.0.0.1', port: port as number, tls: loadClientTls(creds) });
    await c.write(0, Buffer.from(`hello ${what}`));
    tt.equal((await c.read(0, 6 + what.length)).toString(), `hello ${what}`, `${what}: our client writes and reads over nbdkit's TLS`);
    await c.disconnect();
  }
});

t.test('bad TLS configuration: one clear error each', async (tt) => {
  const pki = await makePki(path.join(dir, 'cfg-pki'));
  const cases: [ServerTlsConfig, RegExp][] = [
    [{ mode: 'off', certificates: pki.dir }, /--tls: TLS credentials were given but --tls is off/],
    [{ mode: 'on' }, /--tls on needs credentials: --tls-certificates DIR .* or --tls-psk FILE/],
    [{ mode: 'require', certificates: pki.dir, pskFile: 'x' }, /either --tls-certificates or --tls-psk, not both/],
    [{ mode: 'on', certificates: pki.caOnly }, /has no server-cert\.pem; the directory holds ca-cert\.pem, server-cert\.pem and server-key\.pem/],
    [{ mode: 'on', pskFile: path.join(dir, 'none.psk') }, /PSK file .*none\.psk: cannot be read/],
    [{ mode: 'on', pskFile: path.join(pki.dir, 'ca-cert.pem'), verifyPeer: true }, /--tls-verify-peer: applies to X\.509/],
  ];
  for (const [cfg, re] of cases) tt.throws(() => loadServerTls(cfg), re, JSON.stringify(cfg));

  const broken = path.join(dir, 'broken');
  fs.mkdirSync(broken);
  for (const f of ['ca-cert.pem', 'server-cert.pem']) fs.copyFileSync(path.join(pki.dir, f), path.join(broken, f));
  fs.writeFileSync(path.join(broken, 'server-key.pem'), '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n');
  tt.throws(() => loadServerTls({ mode: 'on', certificates: broken }), /--tls-certificates .*broken: unusable TLS credentials/);
  const mismatched = path.join(dir, 'mismatched');
  fs.mkdirSync(mismatched);
  fs.copyFileSync(path.join(pki.dir, 'server-cert.pem'), path.join(mismatched, 'server-cert.pem'));
  fs.copyFileSync(path.join(pki.dir, 'client-key.pem'), path.join(mismatched, 'server-key.pem'));
  tt.throws(() => loadServerTls({ mode: 'on', certificates: mismatched }), /unusable TLS credentials: .*key values mismatch/, 'a key that is not the certificate\'s');

  const bad = path.join(dir, 'bad.psk');
  fs.writeFileSync(bad, 'alice:00ff\n\nbob:xyz\n');
  tt.throws(() => readPskFile(bad), /PSK file .*bad\.psk line 3: expected USERNAME:HEXKEY/);
  fs.writeFileSync(bad, 'alice:0ff\n');
  tt.throws(() => readPskFile(bad), /line 1: expected USERNAME:HEXKEY \(an even number of hex digits\)/);
  fs.writeFileSync(bad, '\n');
  tt.throws(() => readPskFile(bad), /holds no USERNAME:HEXKEY line/);
  fs.writeFileSync(bad, 'alice:00FF\nbob:0102\n');
  tt.same([...readPskFile(bad)].map(([u, k]) => [u, k.toString('hex')]), [['alice', '00ff'], ['bob', '0102']], 'psktool lines parsed');
  tt.throws(() => loadClientTls({ pskFile: bad, pskUsername: 'carol' }), /has no key for username 'carol'/);
});

t.test('serve: bad TLS flags exit non-zero with a clear line, no stack', async (tt) => {
  const file = path.join(dir, 'serve.img');
  fs.writeFileSync(file, Buffer.alloc(1 << 20));
  const state = path.join(dir, 'state');
  for (const [args, code, re] of [
    [['--file', file, '--tls', 'on'], 1, /--tls on needs credentials/],
    [['--file', file, '--tls', 'sometimes'], 2, /Invalid values:[^]*tls/], // a usage error, as yargs reports them
    [['--file', file, '--tls-psk', file], 1, /TLS credentials were given but --tls is off/],
    [['some-array', '--tls-psk', file], 1, /TLS credentials were given but --tls is off/], // an array controller checks them first too
  ] as const) {
    const r = await runTool(process.execPath, [nbdraidCli, 'serve', '--state', state, ...args], { allowFailure: true, timeoutMs: 30_000 });
    tt.equal(r.code, code, `${args.join(' ')}: exit ${code}`);
    tt.match(r.stderr, re, 'says what is wrong');
    tt.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});
