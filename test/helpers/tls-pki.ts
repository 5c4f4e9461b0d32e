// Test credentials made with openssl in a test's temp dir: a CA, a server certificate for
// localhost / 127.0.0.1 and a client certificate, laid out as nbdkit and qemu expect
// (ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem, client-key.pem); and psktool-style
// key files (`username:hexkey`).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { runTool } from '../../harness/run-tool.js';

export interface Pki {
  /** Everything: CA, server and client credentials (a server's --tls-certificates, a client's too). */
  dir: string;
  /** Only ca-cert.pem: a client that trusts the server but has no certificate of its own. */
  caOnly: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await runTool('openssl', args, { cwd, timeoutMs: 30_000 });
}

/**
 * Creates a CA and the server and client certificates it signs, in `dir`. Two CAs given the same
 * `caName` differ only in their keys: a client holding the other one's certificate is then offered
 * by GnuTLS clients too (they only present a certificate whose issuer name the server asks for).
 */
export async function makePki(dir: string, caName = `nbdraid test CA ${path.basename(dir)}`): Promise<Pki> {
  fs.mkdirSync(dir, { recursive: true });
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca-key.pem', '-out', 'ca-cert.pem', '-days', '2',
    '-subj', `/CN=${caName}`, '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  await signed(dir, 'server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await signed(dir, 'client', '/CN=nbdraid test client', 'extendedKeyUsage=clientAuth\n');
  const caOnly = path.join(dir, 'ca-only');
  fs.mkdirSync(caOnly);
  fs.copyFileSync(path.join(dir, 'ca-cert.pem'), path.join(caOnly, 'ca-cert.pem'));
  return { dir, caOnly };
}

async function signed(dir: string, who: string, subject: string, ext: string): Promise<void> {
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}-key.pem`, '-out', `${who}.csr`, '-subj', subject], dir);
  fs.writeFileSync(path.join(dir, `${who}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n${ext}`);
  await openssl(['x509', '-req', '-in', `${who}.csr`, '-CA', 'ca-cert.pem', '-CAkey', 'ca-key.pem', '-CAcreateserial',
    '-out', `${who}-cert.pem`, '-days', '2', '-extfile', `${who}.ext`], dir);
  fs.chmodSync(path.join(dir, `${who}-key.pem`), 0o600);
}

/** Writes a psktool-format file with a fresh random 256-bit key for each username. */
export function makePskFile(file: string, usernames: string[]): string {
  const lines = usernames.map((u) => `${u}:${crypto.randomBytes(32).toString('hex')}\n`);
  fs.writeFileSync(file, lines.join(''), { mode: 0o600 });
  return file;
}
