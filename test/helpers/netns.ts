// Hosts as network namespaces, for tests that need real separation on one machine. A network is
// a "switch" namespace holding a bridge; each host is a namespace of its own with one veth link
// (eth0) to a port of that bridge and an address the test picks (10.213.0.0/24 by default).
// Every address lives inside namespaces this network created: nothing is added to the root
// namespace, so traffic never leaves the test's own hosts. cut(host) takes the host's bridge
// port down: its peers then hear nothing from it (requests time out), as with a pulled cable.
// Namespaces are deleted at teardown and, should the test process die first, on its exit; ones
// left by a dead process (named with its pid) are removed when the next network is made.
import { spawnSync } from 'node:child_process';
import { safeTeardown } from '../../harness/cleanup.js';
import { runTool } from '../../harness/run-tool.js';
import type { TestHooks } from '../../harness/server-process.js';

const PREFIX = 'nbdr';
const SUBNET = '10.213.0';

export interface Host {
  /** Namespace name (for `ip netns exec`). */
  ns: string;
  /** The host's address on the test network. */
  address: string;
  /** Command prefix that runs a program inside this host. */
  exec: string[];
}

export interface TestNetwork {
  host(name: string): Host;
  /** Adds a host `name` with address SUBNET.<octet> (default: the next free one). */
  addHost(name: string, octet?: number): Promise<Host>;
  /** Takes the host's link to the network down: from now on it neither sends nor receives. */
  cut(name: string): Promise<void>;
  /** Brings a cut host back. */
  restore(name: string): Promise<void>;
  /** Deletes every namespace of this network (idempotent; also run at teardown). */
  destroy(): Promise<void>;
}

const alive = new Set<string>();
let exitHook = false;

function ip(args: string[]): Promise<unknown> {
  return runTool('ip', args, { timeoutMs: 20_000 });
}

function deleteNow(ns: string): void {
  spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  alive.delete(ns);
}

/** Namespaces of this helper whose creating process is gone. */
function sweepStale(): void {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = new RegExp(`^(${PREFIX}-(\\d+)-\\S+)`).exec(line);
    if (!m || Number(m[2]) === process.pid) continue;
    try {
      process.kill(Number(m[2]), 0);
    } catch {
      deleteNow(m[1]);
    }
  }
}

/** True when this process may create network namespaces (root with ip(8) and veth/bridge support). */
export function canMakeNetworks(): boolean {
  const probe = `${PREFIX}-${process.pid}-probe`;
  const ok = spawnSync('ip', ['netns', 'add', probe], { stdio: 'ignore' }).status === 0;
  if (ok) deleteNow(probe);
  return ok;
}

/** A new, empty test network (its switch namespace and bridge). */
export async function createNetwork(t: TestHooks, label: string): Promise<TestNetwork> {
  sweepStale();
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => { for (const ns of [...alive]) deleteNow(ns); });
  }
  const nsName = (h: string): string => `${PREFIX}-${process.pid}-${label}-${h}`;
  const sw = nsName('sw');
  const hosts = new Map<string, Host & { port: string }>();
  const addNs = async (ns: string): Promise<void> => {
    await ip(['netns', 'add', ns]);
    alive.add(ns);
    await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  };
  const net: TestNetwork = {
    host(name) {
      const h = hosts.get(name);
      if (!h) throw new Error(`no host ${name} on network ${label}`);
      return h;
    },
    async addHost(name, octet = hosts.size + 2) {
      const ns = nsName(name);
      const port = `p${hosts.size}`;
      await addNs(ns);
      await ip(['-n', sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ip(['-n', sw, 'link', 'set', port, 'master', 'br0', 'up']);
      const address = `${SUBNET}.${octet}`;
      await ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      const h = { ns, address, port, exec: ['ip', 'netns', 'exec', ns] };
      hosts.set(name, h);
      return h;
    },
    cut: async (name) => { await ip(['-n', sw, 'link', 'set', (net.host(name) as Host & { port: string }).port, 'down']); },
    restore: async (name) => { await ip(['-n', sw, 'link', 'set', (net.host(name) as Host & { port: string }).port, 'up']); },
    async destroy() {
      for (const ns of [...[...hosts.values()].map((h) => h.ns), sw]) if (alive.has(ns)) deleteNow(ns);
    },
  };
  safeTeardown(t, `delete network ${label}`, () => net.destroy());
  await addNs(sw);
  await ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
  await ip(['-n', sw, 'link', 'set', 'br0', 'up']);
  return net;
}
