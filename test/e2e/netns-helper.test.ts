// test/helpers/netns.ts itself: hosts on a test network reach each other at the addresses the test
// picked, a cut host is unreachable and comes back when restored, the root namespace gets no
// address, and destroy() leaves no namespace behind.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { serveMemberIn } from '../helpers/member-servers.js';
import { canMakeNetworks, createNetwork } from '../helpers/netns.js';
import { runTool } from '../../harness/run-tool.js';
import { tempDir } from '../helpers/temp-dir.js';

const namespaces = (): string[] => (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '').split('\n').map((l) => l.split(' ')[0]).filter(Boolean);

t.test('test networks: reach, cut, restore, tear down', { skip: !canMakeNetworks() && 'needs root and ip netns' }, async (tt) => {
  const dir = tempDir(tt);
  const net = await createNetwork(tt, 'nh');
  const server = await net.addHost('server');
  const client = await net.addHost('client', 77);
  tt.equal(client.address, '10.213.0.77', 'a host gets the address the test picked');
  const rootAddrs = spawnSync('ip', ['-o', 'addr'], { encoding: 'utf8' }).stdout;
  tt.notMatch(rootAddrs, /10\.213\.0\./, 'the root namespace holds no test network address');
  const m = await serveMemberIn(tt, server, dir, 'm0', 1 << 20);
  const size = (): Promise<string> => runTool(client.exec[0], [...client.exec.slice(1), 'nbdinfo', '--size', m.uri], { timeoutMs: 4000 }).then((r) => r.stdout.trim());
  tt.equal(await size(), String(1 << 20), 'the client host reaches the server host');
  await net.cut('server');
  await tt.rejects(size(), /timed out|exited/, 'a cut host does not answer');
  await net.restore('server');
  tt.equal(await size(), String(1 << 20), 'restored, it answers again');
  const ours = namespaces().filter((n) => n.includes(`-${process.pid}-nh-`));
  tt.equal(ours.length, 3, `the switch and two hosts exist (${ours.join(', ')})`);
  await net.destroy();
  tt.same(namespaces().filter((n) => ours.includes(n)), [], 'destroy() deletes every namespace of the network');
});
