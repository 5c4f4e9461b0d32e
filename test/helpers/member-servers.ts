// Remote members for end-to-end tests: each member is a sparse file served by its own NBD server
// process (nbdraid serve --file, or nbdkit's file plugin), over loopback TCP or a unix socket,
// and the array is made of the servers' URIs.
import path from 'node:path';
import { type ServerProcess, type TestHooks, startNbdkit, startNbdraid } from './server-process.js';
import { sparseImage } from './temp-dir.js';

export interface MemberServerSpec {
  server: 'nbdraid' | 'nbdkit';
  via: 'tcp' | 'unix';
}

export interface MemberServer {
  /** The file behind the export (read it offline, or run mdadm --examine on it). */
  file: string;
  uri: string;
  process: ServerProcess;
}

/** Starts one server per spec, each exporting its own sparse file `NAME` of `size` bytes under `dir`. */
export async function serveMembers(t: TestHooks, dir: string, size: number, specs: (MemberServerSpec & { name: string })[]): Promise<MemberServer[]> {
  return Promise.all(specs.map(async (s) => {
    const file = sparseImage(dir, s.name, size);
    const opts = { file, exportName: s.name, socket: s.via === 'unix' ? path.join(dir, `${s.name}.sock`) : undefined };
    const proc = s.server === 'nbdraid' ? await startNbdraid(t, opts) : await startNbdkit(t, opts);
    return { file, uri: proc.uri(), process: proc };
  }));
}
