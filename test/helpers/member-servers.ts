// Remote members for end-to-end tests: each member is a sparse file served by its own NBD server
// process (nbdraid serve --file, or nbdkit's file plugin), over loopback TCP or a unix socket,
// and the array is made of the servers' URIs.
import path from 'node:path';
import { safeTeardown } from '../../harness/cleanup.js';
import { waitUntil } from './deadline.js';
import type { Host } from './netns.js';
import { killGroup } from '../../harness/run-tool.js';
import { type ServerProcess, type TestHooks, nbdraidCli, spawnServer, startNbdkit, startNbdraid } from '../../harness/server-process.js';
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

export interface NamespacedServer {
  file: string;
  uri: string;
  pid: number;
  stderr(): string;
}

/**
 * `nbdraid serve --file` inside a test network host, on its address and `port`; resolves
 * once it says it is serving (it cannot be greeted from here: the host is only reachable inside
 * the test network).
 */
export async function serveMemberIn(t: TestHooks, host: Host, dir: string, name: string, size: number, port = 10809): Promise<NamespacedServer> {
  const file = sparseImage(dir, name, size);
  const [cmd, ...pre] = host.exec;
  const s = spawnServer(cmd, [...pre, process.execPath, nbdraidCli, 'serve', '--file', file, '--export', name,
    '--state', path.join(dir, `.state-${name}`), '--listen', `${host.address}:${port}`]);
  safeTeardown(t, `stop member server ${name} on ${host.ns}`, async () => {
    killGroup(s.child.pid, 'SIGTERM');
    const timer = setTimeout(() => killGroup(s.child.pid, 'SIGKILL'), 5000);
    await s.exited;
    clearTimeout(timer);
  });
  await waitUntil(() => /serving export/.test(s.stderr()) || s.child.exitCode !== null, 20_000, `member server ${name} to start`);
  if (s.child.exitCode !== null) throw new Error(`member server ${name} on ${host.ns} exited:\n${s.stderr()}`);
  return { file, uri: `nbd://${host.address}:${port}/${name}`, pid: s.child.pid as number, stderr: s.stderr };
}
