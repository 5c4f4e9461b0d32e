// A throw-away PostgreSQL (tests and benchmarks): Debian's server binaries (/usr/lib/postgresql/N/bin, the newest N) run a
// throw-away cluster in a temporary directory: initdb, then pg_ctl start with the socket directory
// and the port in that directory's cluster, trust authentication for one superuser, no fsync.
// initdb refuses to run as root, so as root every server command runs as the `postgres` user
// (runuser) over a directory that user owns. The server is a daemon outside the test's process
// group: it is stopped at teardown and, if the test process dies first, on its exit.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Hooks, safeTeardown } from './cleanup.js';
import { freePort } from './free-port.js';
import { type ToolResult, runTool } from './run-tool.js';

const PG_ROOT = '/usr/lib/postgresql';
const SERVER_USER = 'postgres';
const START_TIMEOUT_S = 30;

export interface Postgres {
  /** Directory of the unix socket (a libpq `host`). */
  socketDir: string;
  port: number;
  /** TCP address it also listens on, or null (unix socket only). */
  listen: string | null;
  user: string;
  /** A libpq connection URI over the unix socket, e.g. for --coordination. */
  uri(database?: string): string;
  /** psql -c SQL, unaligned and tuples only; throws on an error. */
  psql(sql: string, database?: string): Promise<ToolResult>;
  /** pg_ctl stop -m fast (idempotent; also run at teardown). */
  stop(): Promise<void>;
  /** Stops the server (fast: sessions are cut), waits `downMs`, and starts it again on the same port and socket. */
  restart(downMs?: number): Promise<void>;
  /** The two halves of restart: stops the server (fast) ... */
  down(): Promise<void>;
  /** ... and starts it again on the same port and socket. */
  up(): Promise<void>;
}

/** The newest installed server's bin directory, or null when none is installed. */
export function postgresBin(): string | null {
  if (!fs.existsSync(PG_ROOT)) return null;
  const versions = fs.readdirSync(PG_ROOT).filter((v) => fs.existsSync(path.join(PG_ROOT, v, 'bin', 'initdb')));
  versions.sort((a, b) => Number(b) - Number(a));
  return versions.length > 0 ? path.join(PG_ROOT, versions[0], 'bin') : null;
}

const running = new Set<() => void>();
let exitHook = false;

/** Starts a fresh cluster; `listen` adds a TCP address (e.g. a test network host's) besides the socket. */
/**
 * `listen`: a TCP address to listen on besides the socket; `runIn`: a command prefix the server
 * starts under (`ip netns exec NS`: the server then lives in that network namespace).
 */
export async function startPostgres(t: Hooks, opts: { listen?: string; runIn?: string[] } = {}): Promise<Postgres> {
  const bin = postgresBin();
  if (!bin) throw new Error(`no PostgreSQL server under ${PG_ROOT}; install Debian's postgresql package`);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'nbdraid-pg-'));
  const data = path.join(root, 'data');
  const asRoot = process.getuid?.() === 0;
  fs.chmodSync(root, 0o755); // clients of any user reach the socket
  if (asRoot) fs.chownSync(root, ...serverIds());
  const run = (cmd: string, args: string[], prefix: string[] = []): Promise<ToolResult> => {
    const full = path.join(bin, cmd);
    const argv = asRoot ? ['runuser', '-u', SERVER_USER, '--', full, ...args] : [full, ...args];
    const [first, ...rest] = [...prefix, ...argv];
    return runTool(first, rest, { timeoutMs: 60_000 });
  };
  const user = 'nbdraid';
  const port = await freePort();
  const listen = opts.listen ?? null;
  let state: 'starting' | 'running' | 'down' | 'stopped' = 'starting';
  const stopNow = (): void => {
    const args = [path.join(bin, 'pg_ctl'), 'stop', '-D', data, '-m', 'immediate', '-w'];
    spawnSync(asRoot ? 'runuser' : args[0], asRoot ? ['-u', SERVER_USER, '--', ...args] : args.slice(1), { stdio: 'ignore' });
  };
  const pg: Postgres = {
    socketDir: root, port, listen, user,
    uri: (database = 'postgres') => `postgresql://${user}@/${database}?host=${encodeURIComponent(root)}&port=${port}`,
    psql: (sql, database = 'postgres') => runTool('psql', ['-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', root, '-p', String(port), '-U', user, '-d', database, '-c', sql], { timeoutMs: 30_000 }),
    async stop() {
      if (state !== 'running') return;
      state = 'stopped';
      running.delete(stopNow);
      await run('pg_ctl', ['stop', '-D', data, '-m', 'fast', '-w', '-t', String(START_TIMEOUT_S)]);
    },
    async restart(downMs = 0) {
      await pg.down();
      await new Promise((r) => setTimeout(r, downMs));
      await pg.up();
    },
    async down() {
      if (state !== 'running') throw new Error('PostgreSQL is not running');
      state = 'down';
      await run('pg_ctl', ['stop', '-D', data, '-m', 'fast', '-w', '-t', String(START_TIMEOUT_S)]);
    },
    async up() {
      if (state !== 'down') throw new Error('PostgreSQL was not taken down');
      await start();
      state = 'running';
    },
  };
  safeTeardown(t, `stop PostgreSQL in ${root}`, async () => {
    await pg.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });
  await run('initdb', ['-D', data, '-U', user, '--auth=trust', '--encoding=UTF8', '--no-locale', '--no-sync']);
  // initdb trusts loopback only; a server listening on a test network's address (inside a
  // namespace the test made) trusts that network's hosts too.
  if (listen) fs.appendFileSync(path.join(data, 'pg_hba.conf'), 'host all all samenet trust\n');
  const serverOpts = `-k ${root} -p ${port} -c listen_addresses='${listen ?? ''}' -c fsync=off -c full_page_writes=off`;
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => { for (const stop of running) stop(); });
  }
  running.add(stopNow);
  state = 'running';
  async function start(): Promise<void> {
    const started = await run('pg_ctl', ['start', '-D', data, '-l', path.join(root, 'server.log'), '-w', '-t', String(START_TIMEOUT_S), '-o', serverOpts], opts.runIn)
      .catch((err: Error) => err);
    if (started instanceof Error) {
      const log = fs.existsSync(path.join(root, 'server.log')) ? fs.readFileSync(path.join(root, 'server.log'), 'utf8') : '';
      throw new Error(`${started.message}\n--- server.log ---\n${log.slice(-4000)}`);
    }
  }
  await start();
  return pg;
}

function serverIds(): [number, number] {
  const r = spawnSync('id', ['-u', SERVER_USER], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', SERVER_USER], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) throw new Error(`no '${SERVER_USER}' user to run PostgreSQL as (Debian's postgresql package creates it)`);
  return [Number(r.stdout.trim()), Number(g.stdout.trim())];
}
