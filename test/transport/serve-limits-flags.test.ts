// The limit flags of `serve` and `cluster`: parsed with units, refused clearly when bad (by the
// real CLI, before anything is opened), and handed to every controller process of a cluster.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { controllerArgs } from '../../cmd/verbs/cluster.js';
import { serverLimits } from '../../cmd/verbs/serve.js';

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cmd/nbdraid.js');

async function cli(...args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await promisify(execFile)(process.execPath, [CLI, ...args], { timeout: 20_000 });
    return { code: 0, stderr };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

t.test('serverLimits: units, seconds, and unset flags left to the defaults', async (t) => {
  t.same(serverLimits({}), {});
  t.same(serverLimits({ 'payload-budget': '1G', 'max-connections': 8, 'request-timeout': 2.5 }),
    { payloadBudget: 1 << 30, maxConnections: 8, requestTimeoutMs: 2500 });
  t.same(serverLimits({ 'request-timeout': 0 }), { requestTimeoutMs: 0 }, '0: no request timeout');
  t.throws(() => serverLimits({ 'payload-budget': 'lots' }), { code: 'EINVAL', message: /--payload-budget/ });
  t.throws(() => serverLimits({ 'max-connections': 0 }), { code: 'EINVAL', message: /--max-connections: must be a whole number of at least 1/ });
  t.throws(() => serverLimits({ 'request-timeout': -1 }), { code: 'EINVAL', message: /--request-timeout/ });
});

t.test('cluster hands the limits to every controller', async (t) => {
  const args = { state: '/s', name: 'md0', controllers: 2, force: false, 'payload-budget': '64M', 'request-timeout': 5 };
  t.same(controllerArgs(args, 1), ['--state', '/s', 'serve', 'md0', '--listen', '127.0.0.1:10810', '--payload-budget', '64M', '--request-timeout', '5']);
  t.same(controllerArgs({ state: '/s', name: 'md0', controllers: 1, force: false }, 0), ['--state', '/s', 'serve', 'md0', '--listen', '127.0.0.1:10809']);
});

t.test('the real CLI refuses bad limits with one line', async (t) => {
  for (const verb of [['serve', '--file', '/nonexistent/disk.img'], ['cluster', 'md0']]) {
    const r = await cli(...verb, '--max-connections', '0');
    t.equal(r.code, 1, `${verb[0]}: exit code 1`);
    t.equal(r.stderr, 'nbdraid: --max-connections: must be a whole number of at least 1, got 0\n', `${verb[0]}: before anything is opened`);
  }
});
