// TLS for NBD (STARTTLS): the credentials a server or client uses, loaded and checked once, and the
// upgrade of an already-connected socket once STARTTLS was acknowledged.
//
// Credentials follow nbdkit and qemu: an X.509 directory holding ca-cert.pem, server-cert.pem and
// server-key.pem (client-cert.pem and client-key.pem on a client), or a PSK file in psktool's
// format, one `username:hexkey` per line. TLS 1.2 is the minimum, as the NBD spec asks.
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import tls from 'node:tls';
import { NbdraidError } from '../errors.js';

/** off: STARTTLS gets ERR_POLICY; on: plain and TLS clients alike; require: TLS before anything else. */
export type TlsMode = 'off' | 'on' | 'require';
export const TLS_MODES: readonly TlsMode[] = ['off', 'on', 'require'];

export interface ServerTlsConfig {
  mode: TlsMode;
  /** Directory with ca-cert.pem, server-cert.pem, server-key.pem. */
  certificates?: string;
  /** Ask clients for a certificate and refuse those the CA in ca-cert.pem did not sign. */
  verifyPeer?: boolean;
  /** psktool file: `username:hexkey` lines. */
  pskFile?: string;
}

/** What a server session needs to run STARTTLS; null when TLS is off. */
export interface ServerTls {
  mode: 'on' | 'require';
  /** How clients authenticate, for log lines and docs: 'x509' or 'psk'. */
  kind: 'x509' | 'psk';
  /** Options of the tls.Server that runs each upgrade (see upgradeServerSocket). */
  serverOptions: tls.TlsOptions;
}

export interface ClientTlsConfig {
  /** X.509: directory with ca-cert.pem (and client-cert.pem, client-key.pem to present one). */
  certificates?: string;
  /** PSK: the key file and which username in it to use (default: the first line's). */
  pskFile?: string;
  pskUsername?: string;
  /** Host name the server certificate must carry (default: the host connected to). */
  servername?: string;
}

/** Every cipher suite with a pre-shared key (TLS 1.2), plus the TLS 1.3 suites, which all take one. */
const PSK_CIPHERS = 'ECDHE-PSK-AES256-GCM-SHA384:ECDHE-PSK-AES128-GCM-SHA256:ECDHE-PSK-CHACHA20-POLY1305:'
  + 'DHE-PSK-AES256-GCM-SHA384:DHE-PSK-AES128-GCM-SHA256:PSK-AES256-GCM-SHA384:PSK-AES128-GCM-SHA256:'
  + 'ECDHE-PSK-AES256-CBC-SHA384:ECDHE-PSK-AES128-CBC-SHA256:PSK-AES128-CBC-SHA256:'
  + 'TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256';

const MIN_VERSION: tls.SecureVersion = 'TLSv1.2';

/** The NBD session's own handshake timeout ends a stalled TLS handshake first; this is a backstop. */
const HANDSHAKE_TIMEOUT_MS = 120_000;

/** Checks the flags together and loads the credentials; throws a clear error for bad ones. */
export function loadServerTls(cfg: ServerTlsConfig): ServerTls | null {
  const where = '--tls';
  if (!TLS_MODES.includes(cfg.mode)) throw new NbdraidError('EINVAL', where, `unknown mode '${cfg.mode}'; use off, on or require`);
  if (cfg.mode === 'off') {
    if (cfg.certificates || cfg.pskFile || cfg.verifyPeer) {
      throw new NbdraidError('EINVAL', where, 'TLS credentials were given but --tls is off; add --tls on or --tls require');
    }
    return null;
  }
  if (cfg.certificates && cfg.pskFile) throw new NbdraidError('EINVAL', where, 'give either --tls-certificates or --tls-psk, not both');
  if (cfg.pskFile) {
    if (cfg.verifyPeer) throw new NbdraidError('EINVAL', '--tls-verify-peer', 'applies to X.509 certificates, not to --tls-psk (a PSK client proves itself by its key)');
    const keys = readPskFile(cfg.pskFile);
    return checked({ mode: cfg.mode, kind: 'psk', serverOptions: pskServerOptions(keys) }, '--tls-psk');
  }
  if (!cfg.certificates) {
    throw new NbdraidError('EINVAL', where, `--tls ${cfg.mode} needs credentials: --tls-certificates DIR (ca-cert.pem, server-cert.pem, server-key.pem) or --tls-psk FILE`);
  }
  const dir = cfg.certificates;
  return checked({ mode: cfg.mode, kind: 'x509', serverOptions: x509ServerOptions(dir, cfg.verifyPeer === true) }, `--tls-certificates ${dir}`);
}

/** Builds a server once, so that a bad key or certificate is reported at start, not per client. */
function checked(t: ServerTls, where: string): ServerTls {
  try {
    tls.createServer(t.serverOptions);
  } catch (err) {
    throw new NbdraidError('EINVAL', where, `unusable TLS credentials: ${tlsReason(err as Error)}`, { cause: err });
  }
  return t;
}

function x509ServerOptions(dir: string, verifyPeer: boolean): tls.TlsOptions {
  const cert = readPem(dir, 'server-cert.pem');
  const key = readPem(dir, 'server-key.pem');
  const ca = verifyPeer ? readPem(dir, 'ca-cert.pem') : readPemIfPresent(dir, 'ca-cert.pem');
  return { cert, key, ca, minVersion: MIN_VERSION, requestCert: verifyPeer, rejectUnauthorized: verifyPeer, handshakeTimeout: HANDSHAKE_TIMEOUT_MS };
}

function pskServerOptions(keys: Map<string, Buffer>): tls.TlsOptions {
  return {
    ciphers: PSK_CIPHERS,
    minVersion: MIN_VERSION,
    handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    // An unknown username gets no key, and the handshake fails.
    pskCallback: (_socket: tls.TLSSocket, identity: string) => keys.get(identity) ?? null,
  };
}

/** Loads a client's credentials; the result is passed to every connection that should use TLS. */
export function loadClientTls(cfg: ClientTlsConfig): tls.ConnectionOptions {
  if (cfg.certificates && cfg.pskFile) throw new NbdraidError('EINVAL', 'nbd client tls', 'give either certificates or a PSK file, not both');
  if (cfg.pskFile) {
    const keys = readPskFile(cfg.pskFile);
    const identity = cfg.pskUsername ?? keys.keys().next().value as string;
    const key = keys.get(identity);
    if (!key) throw new NbdraidError('ENOENT', `PSK file ${cfg.pskFile}`, `has no key for username '${identity}'`);
    return {
      secureContext: secureContextOf(`PSK file ${cfg.pskFile}`, { ciphers: PSK_CIPHERS, minVersion: MIN_VERSION }),
      pskCallback: () => ({ identity, psk: key }),
      checkServerIdentity: () => undefined,
    };
  }
  if (!cfg.certificates) throw new NbdraidError('EINVAL', 'nbd client tls', 'needs a certificates directory or a PSK file');
  const dir = cfg.certificates;
  const ca = readPem(dir, 'ca-cert.pem');
  const cert = readPemIfPresent(dir, 'client-cert.pem');
  const key = cert ? readPem(dir, 'client-key.pem') : undefined;
  return {
    secureContext: secureContextOf(`certificates ${dir}`, { ca, cert, key, minVersion: MIN_VERSION }),
    servername: cfg.servername,
  };
}

/**
 * Parses a psktool file: `username:hexkey` per line, blank lines ignored. Throws for a missing file,
 * a malformed line (naming its number) or a file with no key.
 */
export function readPskFile(file: string): Map<string, Buffer> {
  const where = `PSK file ${file}`;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new NbdraidError('ENOENT', where, `cannot be read (${(err as Error).message}); create one with: psktool -u USER -p ${file}`);
  }
  const keys = new Map<string, Buffer>();
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '') return;
    const m = /^([^:]+):([0-9a-fA-F]+)$/.exec(line);
    if (!m || m[2].length % 2 !== 0) {
      throw new NbdraidError('EINVAL', `${where} line ${i + 1}`, 'expected USERNAME:HEXKEY (an even number of hex digits), as psktool writes');
    }
    keys.set(m[1], Buffer.from(m[2], 'hex'));
  });
  if (keys.size === 0) throw new NbdraidError('EINVAL', where, 'holds no USERNAME:HEXKEY line');
  return keys;
}

function readPem(dir: string, name: string): Buffer {
  const pem = readPemIfPresent(dir, name);
  if (!pem) {
    throw new NbdraidError('ENOENT', `--tls-certificates ${dir}`, `has no ${name}; the directory holds ca-cert.pem, server-cert.pem and server-key.pem (client-cert.pem and client-key.pem for a client), as for nbdkit and qemu`);
  }
  return pem;
}

function readPemIfPresent(dir: string, name: string): Buffer | undefined {
  try {
    return fs.readFileSync(path.join(dir, name));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new NbdraidError('EPERM', `--tls-certificates ${dir}`, `cannot read ${name}: ${(err as Error).message}`);
  }
}

function secureContextOf(where: string, opts: tls.SecureContextOptions): tls.SecureContext {
  try {
    return tls.createSecureContext(opts);
  } catch (err) {
    throw new NbdraidError('EINVAL', where, `unusable TLS credentials: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Server side, right after the STARTTLS ACK went out: runs the TLS handshake on the same socket and
 * calls `done` with the TLS socket, or with why the client was refused (the socket is then closed).
 * The plain socket must be paused with nothing of the client's left unread by us; it emits 'close'
 * when the TLS socket over it closes.
 *
 * The handshake runs in a tls.Server that never listens (the connection is handed to it), because
 * only tls.Server checks a client certificate against the CA after the handshake: a bare
 * tls.TLSSocket with rejectUnauthorized refuses a client without a certificate, but not one whose
 * certificate another CA signed.
 */
export function upgradeServerSocket(raw: net.Socket, cfg: ServerTls, done: (err: Error | null, secure?: tls.TLSSocket) => void): void {
  const server = tls.createServer(cfg.serverOptions);
  server.once('secureConnection', (secure: tls.TLSSocket) => done(null, secure));
  server.once('tlsClientError', (err: Error, secure: tls.TLSSocket) => {
    const refusal = secure.authorizationError ? `client certificate refused (${String(secure.authorizationError)})` : tlsReason(err);
    done(new NbdraidError('EPERM', 'TLS', refusal, { cause: err }));
  });
  server.emit('connection', raw);
}

/** Client side, after the server acknowledged STARTTLS: resolves once the TLS handshake is done. */
export function upgradeClientSocket(raw: net.Socket, opts: tls.ConnectionOptions, host: string | undefined): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const servername = opts.servername ?? (host && net.isIP(host) === 0 ? host : undefined);
    const secure = tls.connect({ ...opts, socket: raw, host: host ?? 'localhost', servername });
    const fail = (err: Error): void => {
      secure.destroy();
      reject(new NbdraidError('EPROTO', 'nbd client tls', `TLS handshake failed: ${tlsReason(err)}`, { cause: err }));
    };
    secure.once('error', fail);
    secure.once('secureConnect', () => {
      secure.removeListener('error', fail);
      resolve(secure);
    });
  });
}

/** OpenSSL's reason ('binder does not verify') without its source file and line. */
function tlsReason(err: Error): string {
  return (err as Error & { reason?: string }).reason ?? err.message;
}
