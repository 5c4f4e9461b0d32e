// NBD URIs (the NBD project's URI format, as libnbd and qemu read them) for exports reached over
// the network: nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH, and nbds:// / nbds+unix://
// for STARTTLS, with the TLS credentials in the query (tls-certificates=DIR, or tls-psk-file=FILE
// with an optional tls-username=NAME).
import { NbdraidError } from '../errors.js';
import type { Address } from './client-handshake.js';

export const DEFAULT_NBD_PORT = 10809;

export interface NbdTarget {
  address: Address;
  exportName: string;
  /** nbds: STARTTLS is required before anything else. */
  tls: { certificates?: string; pskFile?: string; pskUsername?: string } | null;
}

const SCHEMES = ['nbd:', 'nbds:', 'nbd+unix:', 'nbds+unix:'];
const QUERY_KEYS = new Set(['socket', 'tls-certificates', 'tls-psk-file', 'tls-username']);

/** True when `s` names an NBD export rather than a local path. */
export function isNbdUri(s: string): boolean {
  return /^nbds?(\+unix)?:\/\//i.test(s);
}

/** Parses an NBD URI; anything malformed is one EINVAL naming what is wrong. */
export function parseNbdUri(uri: string): NbdTarget {
  const bad = (why: string): NbdraidError => new NbdraidError('EINVAL', `member ${uri}`, why);
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    throw bad('not a valid URI');
  }
  const scheme = u.protocol.toLowerCase();
  if (!SCHEMES.includes(scheme)) throw bad(`unknown scheme ${scheme}; use nbd://, nbds://, nbd+unix:// or nbds+unix://`);
  for (const key of u.searchParams.keys()) if (!QUERY_KEYS.has(key)) throw bad(`unknown query parameter '${key}'`);
  if (u.username || u.password) throw bad('user names and passwords in the URI are not supported');
  const exportName = decodeURIComponent(u.pathname.replace(/^\//, ''));
  const secure = scheme.startsWith('nbds');
  const q = (k: string): string | undefined => u.searchParams.get(k) ?? undefined;
  const tls = secure ? { certificates: q('tls-certificates'), pskFile: q('tls-psk-file'), pskUsername: q('tls-username') } : null;
  if (!secure && (q('tls-certificates') || q('tls-psk-file'))) throw bad('TLS credentials given for a plain nbd:// URI; use nbds://');
  if (scheme.endsWith('+unix:')) {
    const socket = q('socket');
    if (!socket) throw bad('an nbd+unix:// URI needs ?socket=PATH');
    if (u.host) throw bad('an nbd+unix:// URI takes no host');
    return { address: { path: socket }, exportName, tls };
  }
  if (q('socket')) throw bad('?socket= belongs to nbd+unix:// URIs');
  if (!u.hostname) throw bad('no host');
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = u.port ? Number(u.port) : DEFAULT_NBD_PORT;
  return { address: { host, port }, exportName, tls };
}

