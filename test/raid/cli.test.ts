// The array verbs end to end: `node dist/cmd/nbdraid.js` as a user runs it, against real files,
// checked against mdadm --examine; bad input gets a clear error, an exit code, and changes nothing.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { runTool, toolPath } from '../../harness/run-tool.js';
import { nbdraidCli } from '../../harness/server-process.js';
import { tempDir } from '../helpers/temp-dir.js';

interface Run { code: number | null; stdout: string; stderr: string; signal: string | null }

function cli(state: string, args: string[], cwd: string): Promise<Run> {
  return runTool('node', [nbdraidCli, '--state', state, ...args], { cwd, allowFailure: true, timeoutMs: 30_000 })
    .then((r) => ({ code: r.code, stdout: r.stdout, stderr: r.stderr || (r.signal ? `killed by ${r.signal}` : ''), signal: r.signal }));
}

async function json<T>(state: string, args: string[], cwd: string): Promise<T> {
  const r = await cli(state, [...args, '--json'], cwd);
  if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

interface Status { slots: string; state: string; events: number; served: boolean; activeDisks: number }

function setup(t: Test): { dir: string; state: string; run: (...a: string[]) => Promise<Run>; status: (n: string) => Promise<Status> } {
  const dir = tempDir(t, 'nbdraid-cli-');
  const state = path.join(dir, 'state');
  return {
    dir, state,
    run: (...a) => cli(state, a, dir),
    status: (n) => json<Status>(state, ['status', n], dir),
  };
}


t.test('create, examine (agreeing with mdadm), status', async (t) => {
  const { dir, run, status, state } = setup(t);
  const r = await run('create', 'a1', 'm0', 'm1', 'm2', 'm3', '--size', '48M', '--chunk', '64K');
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /created a1: raid5, 4 members, 64K chunk, left-symmetric/);
  t.ok(fs.statSync(path.join(dir, 'm0')).blocks * 512 < (1 << 20), 'member files are sparse');
  const ex = await json<{ arrayUuid: string; events: number; deviceRole: string; chunkSize: number; dataOffset: number; arrayState: string }[]>(state, ['examine', 'm0', 'm3'], dir);
  t.equal(ex.length, 2);
  t.equal(ex[1].deviceRole, 'Active device 3');
  const md = await runTool('mdadm', ['--examine', path.join(dir, 'm3')], { env: { PATH: toolPath() } });
  t.match(md.stdout, new RegExp(`Array UUID : ${ex[1].arrayUuid}`));
  t.match(md.stdout, /Device Role : Active device 3/);
  t.match(md.stdout, /Chunk Size : 64K/);
  t.match(md.stdout, new RegExp(`Data Offset : ${ex[1].dataOffset} sectors`));
  const text = await run('examine', 'm1');
  t.match(text.stdout, /Array State : AAAA/);
  const st = await status('a1');
  t.same([st.slots, st.state, st.events, st.served], ['UUUU', 'clean', 0, false]);
  const all = await run('status');
  t.match(all.stdout, /nbdraid: a1 : active raid5 m0\[0\] m1\[1\] m2\[2\] m3\[3\]/);
  t.match(all.stdout, /\[4\/4\] \[UUUU\]/);
});

t.test('bad arguments: clear error, exit code, nothing changed', async (t) => {
  const { dir, run } = setup(t);
  const cases: [string[], number, RegExp][] = [
    [['create', 'b', 'x0', 'x1', 'x2', '--size', '16M', '--chunk', '3K'], 1, /--chunk: .*3K|chunk must be a power of two/],
    [['create', 'b', 'x0', 'x1', 'x2', '--size', '16M', '--layout', 'diagonal'], 1, /unknown layout "diagonal"/],
    [['create', 'b', 'x0', 'x1', '--size', '16M'], 1, /at least 3 members/],
    [['create', 'b', 'x0', 'x1', 'x2'], 1, /no such member .*pass --size/],
    [['create', 'b', 'x0', 'x1', 'x2', '--size', 'lots'], 1, /--size: "lots" is not a size/],
    [['create', 'b', 'x0', 'x0', 'x2', '--size', '16M'], 1, /listed twice/],
    [['create', 'b', 'x0', 'x1', 'x2', '--size', '16K'], 1, /cannot hold one/],
    [['fail', 'nosuch', '--member', '1'], 1, /array nosuch: no such array/],
    [['examine', 'x9'], 1, /x9/],
    [['frobnicate'], 2, /Unknown argument|Unknown command|Did you mean/],
  ];
  for (const [args, code, msg] of cases) {
    const r = await run(...args);
    t.equal(r.code, code, `${args.join(' ')} exits ${code}`);
    t.match(r.stderr, msg, `${args.join(' ')}: ${r.stderr.trim().split('\n')[0]}`);
  }
  t.same(fs.readdirSync(dir).filter((f) => f.startsWith('x')), [], 'no member files left behind');
  t.match((await run('status')).stdout, /no arrays/, 'no array registered');
});

t.test('live superblocks refused without --force; fail, remove, refusals', async (t) => {
  const { run, status } = setup(t);
  t.equal((await run('create', 'c1', 'm0', 'm1', 'm2', 'm3', '--size', '16M', '--chunk', '16K')).code, 0);
  const again = await run('create', 'c2', 'm0', 'm1', 'm2', 'm3');
  t.equal(again.code, 1);
  t.match(again.stderr, /carries the md superblock of array "c1".*pass --force/);
  t.equal((await run('remove', 'c1', '--member', '1')).code, 1, 'an active member cannot be removed');
  const f = await run('fail', 'c1', '--member', '2');
  t.equal(f.code, 0, f.stderr);
  t.match(f.stdout, /member 2 .* marked faulty/);
  let st = await status('c1');
  t.same([st.slots, st.state, st.events], ['UU_U', 'degraded', 2], 'a failure leaves the member 2 events behind (md kicks it as non-fresh)');
  const second = await run('fail', 'c1', '--member', '0');
  t.equal(second.code, 1);
  t.match(second.stderr, /would take it offline; pass --force/);
  t.equal((await status('c1')).events, 2, 'refused fail changed nothing');
  const rm = await run('remove', 'c1', '--member', '2');
  t.equal(rm.code, 0, rm.stderr);
  st = await status('c1');
  t.same([st.slots, st.events], ['UU_U', 3], 'remove bumps events');
  const forced = await run('create', 'c2', 'm0', 'm1', 'm2', 'm3', '--force');
  t.equal(forced.code, 0, forced.stderr);
  t.same((await status('c2')).slots, 'UUUU');
});

t.test('assemble refuses a stale member and says why; --force brings it back', async (t) => {
  const { dir, run, status } = setup(t);
  const c = await run('create', 'd1', 'm0', 'm1', 'm2', 'm3', '--size', '16M', '--chunk', '16K');
  t.equal(c.code, 0, c.stderr);
  fs.copyFileSync(path.join(dir, 'm3'), path.join(dir, 'm3.old'));
  t.equal((await run('fail', 'd1', '--member', '2')).code, 0);
  t.equal((await run('remove', 'd1', '--member', '2')).code, 0);
  fs.copyFileSync(path.join(dir, 'm3.old'), path.join(dir, 'm3')); // m3 now missed two updates
  const r = await run('assemble', 'd1', 'm0', 'm1', 'm2', 'm3');
  t.equal(r.code, 1);
  t.match(r.stderr, /m3: events 0 older than 3/);
  t.match(r.stderr, /--force may bring stale members back/);
  const f = await run('assemble', 'd1', 'm0', 'm1', 'm2', 'm3', '--force');
  t.equal(f.code, 0, f.stderr);
  t.match(f.stdout, /m3: forced in slot 3/);
  const st = await status('d1');
  t.same([st.slots, st.state], ['UU_U', 'degraded']);
});

t.test('fail reaches the serving process; data stays readable', async (t) => {
  const { dir, run, status, state } = setup(t);
  t.equal((await run('create', 'e1', 'm0', 'm1', 'm2', '--size', '24M', '--chunk', '64K')).code, 0);
  const sock = path.join(dir, 's.sock');
  const server = spawn('node', [nbdraidCli, '--state', state, 'serve', 'e1', '--socket', sock], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
  t.teardown(() => { if (server.exitCode === null) server.kill('SIGKILL'); });
  for (let i = 0; i < 100 && !stderr.includes('serving'); i++) await new Promise((r) => setTimeout(r, 100));
  t.match(stderr, /serving (array|export) 'e1'/);
  const uri = `nbd+unix:///e1?socket=${sock}`;
  const qio = (cmd: string) => runTool('qemu-io', ['-f', 'raw', '-c', cmd, uri], { env: { PATH: toolPath() } });
  await qio('write -P 0x5a 100k 3M');
  t.equal((await status('e1')).served, true);
  const f = await run('fail', 'e1', '--member', '1');
  t.equal(f.code, 0, f.stderr);
  t.match(f.stdout, /failed by the serving process/);
  t.match(stderr, /member 1 .* marked faulty/);
  const rd = await qio('read -P 0x5a 100k 3M');
  t.match(rd.stdout, /read 3145728\/3145728/);
  t.same((await status('e1')).slots, 'U_U');
  server.kill('SIGTERM');
  t.equal(await exited, 0, 'server stops cleanly');
  const st = await status('e1');
  t.same([st.state, st.served], ['degraded', false]);
});

/** Runs `status` with `args` until it has drawn `frames` screens (at most 30 s), then Ctrl-C. */
function watchFor(state: string, cwd: string, args: string[], frames: number): Promise<{ out: string; frames: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn('node', [nbdraidCli, '--state', state, 'status', ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const count = () => out.split('(Ctrl-C to stop)').length - 1;
    const collect = (b: Buffer) => {
      out += b.toString();
      if (count() >= frames) child.kill('SIGINT');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const limit = setTimeout(() => child.kill('SIGINT'), 30_000);
    const hard = setTimeout(() => child.kill('SIGKILL'), 40_000);
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(limit); clearTimeout(hard); resolve({ out, frames: count(), code }); });
  });
}

t.test('status --watch refreshes until Ctrl-C (bare, with seconds, before the name); a spare shows (S)', async (t) => {
  const { dir, run, state } = setup(t);
  t.equal((await run('create', 'w1', 'm0', 'm1', 'm2', '--size', '16M')).code, 0);
  t.equal((await run('add-spare', 'w1', 'sp', '--size', '16M')).code, 0);
  const once = await run('status', 'w1');
  t.match(once.stdout, /sp\[-\]\(S\)/, 'the spare is marked (S), as md does');
  t.notMatch(once.stdout, /Ctrl-C/, 'without --watch: printed once');
  const members = (JSON.parse((await run('status', 'w1', '--json')).stdout) as { members: { path: string; state: string }[] }).members;
  t.equal(members.find((m) => m.path.endsWith('sp'))?.state, 'spare');
  for (const args of [['--watch'], ['--watch', '0.3', 'w1'], ['--watch', 'w1']]) {
    const r = await watchFor(state, dir, args, 3);
    t.ok(r.frames >= 3, `status ${args.join(' ')}: drew ${r.frames} screens before Ctrl-C (a single print stops at 1)`);
    t.match(r.out, /nbdraid: w1 : active raid5/);
    t.equal(r.code, 0, `status ${args.join(' ')}: Ctrl-C ends it cleanly`);
  }
  const bad = await run('status', '--watch', '0');
  t.equal(bad.code, 1);
  t.match(bad.stderr, /--watch takes a number of seconds greater than 0/);
});
