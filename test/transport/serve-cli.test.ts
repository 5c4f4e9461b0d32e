// `nbdraid serve --file`, as a real process: the ready line, TCP and unix sockets, read-only,
// graceful stop on SIGTERM/SIGINT, and clear errors for bad arguments.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { NbdClient } from '../../lib/transport/client.js';
import { parseListen } from '../../cmd/verbs/serve.js';
import { safeTeardown, trackGroup } from '../../harness/cleanup.js';
import { withDeadline } from '../helpers/deadline.js';
import { killGroup } from '../../harness/run-tool.js';

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cmd/nbdraid.js');

function tempFile(t: { teardown(fn: () => void): void }, size: number): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdraid-serve-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'disk.img');
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  return file;
}

type Hooks = { teardown(fn: () => unknown): void; comment(...a: unknown[]): void };

/** Every child is killed at teardown (if still running) and dies with this process (own group). */
function spawnServe(t: Hooks, args: string[]): ChildProcess {
  const child = spawn(process.execPath, [cli, 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  trackGroup(child);
  safeTeardown(t, `kill nbdraid serve (pid ${child.pid})`, () => {
    if (child.exitCode === null && child.signalCode === null) killGroup(child.pid, 'SIGKILL');
  });
  return child;
}

interface Served { child: ChildProcess; line: string; exited: Promise<number | null>; stderr: () => string }

/** Starts `nbdraid serve ...` and resolves at its ready line. */
function serve(t: Hooks, args: string[]): Promise<Served> {
  const child = spawnServe(t, args);
  let err = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ready line: ${err}`)), 15_000);
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      const line = err.split('\n').find((l) => l.includes('serving export'));
      if (line) {
        clearTimeout(timer);
        resolve({ child, line, exited, stderr: () => err });
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code}: ${err}`)));
  });
}

t.test('serves a file over TCP and stops gracefully on SIGTERM', async (t) => {
  const file = tempFile(t, 8 << 20);
  const s = await serve(t, ['--file', file, '--export', 'disk', '--listen', '127.0.0.1:0']);
  const m = /serving export 'disk' \(8388608 bytes\) on nbd:\/\/127\.0\.0\.1:(\d+)\/disk$/.exec(s.line);
  t.ok(m, s.line);
  const c = await NbdClient.connect({ host: '127.0.0.1', port: Number(m?.[1]), exportName: 'disk' });
  await c.write(4096, Buffer.from('on disk'), { fua: true });
  await c.disconnect();
  s.child.kill('SIGTERM');
  t.equal(await withDeadline(s.exited, 20_000, 'serve exiting on SIGTERM'), 0);
  const back = Buffer.alloc(7);
  const fd = fs.openSync(file, 'r');
  fs.readSync(fd, back, 0, 7, 4096);
  fs.closeSync(fd);
  t.equal(back.toString(), 'on disk', 'the write reached the file');
});

t.test('unix socket, read-only, default export name, SIGINT', async (t) => {
  const file = tempFile(t, 1 << 20);
  const sock = path.join(path.dirname(file), 'nbd.sock');
  const s = await serve(t, ['--file', file, '--socket', sock, '--read-only']);
  t.match(s.line, `serving export 'disk.img' (1048576 bytes, read-only) on nbd+unix:///disk.img?socket=${sock}`);
  const c = await NbdClient.connect({ path: sock });
  await t.rejects(c.write(0, Buffer.from('x')), { code: 'EPERM' });
  t.equal((await c.read(0, 512)).length, 512);
  await c.disconnect();
  s.child.kill('SIGINT');
  t.equal(await withDeadline(s.exited, 20_000, 'serve exiting on SIGINT'), 0);
  t.notOk(fs.existsSync(sock), 'socket removed');
});

t.test('argument errors say what to do', async (t) => {
  const run = (args: string[]) => withDeadline(new Promise<{ code: number | null; err: string }>((resolve) => {
    const child = spawnServe(t, args);
    let err = '';
    child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
    child.once('exit', (code) => resolve({ code, err }));
  }), 20_000, `nbdraid serve ${args.join(' ')} exiting`);
  t.match(await run([]), { code: 1, err: /--file PATH/ });
  t.match(await run(['--file', '/nonexistent/x.img']), { code: 1, err: /nbdraid: open \/nonexistent\/x.img/ });
  t.match(await run(['--file', tempFile(t, 4096), '--listen', 'nonsense']), { code: 1, err: /expected HOST:PORT/ });
  t.match(await run(['--file', tempFile(t, 4096), '--listen', '1.2.3.4:5', '--socket', '/tmp/x']), { code: 2, err: /mutually exclusive/ });
});

t.test('parseListen', async (t) => {
  t.same(parseListen('127.0.0.1:10809'), { host: '127.0.0.1', port: 10809 });
  t.same(parseListen('[::1]:10809'), { host: '::1', port: 10809 });
  t.same(parseListen('10810'), { host: '127.0.0.1', port: 10810 });
  t.same(parseListen(':10811'), { host: '127.0.0.1', port: 10811 });
  t.throws(() => parseListen('::1:10809'), { code: 'EINVAL' });
  t.throws(() => parseListen('host:99999'), { code: 'EINVAL' });
});
