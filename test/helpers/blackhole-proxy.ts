// A TCP relay on loopback in front of a server, which a test can cut: while cut it forwards
// nothing either way and answers nothing, as a network that drops a host's packets (the relay is
// the only path between the two, so the server sees the same silence). heal() forwards again.
// A connection opened while cut is accepted (the relay's own), but nothing reaches the server.
import net from 'node:net';
import { type Hooks, safeTeardown } from '../../harness/cleanup.js';

export interface BlackholeProxy {
  port: number;
  cut(): void;
  heal(): void;
}

export async function blackholeProxy(t: Hooks, host: string, port: number): Promise<BlackholeProxy> {
  let cut = false;
  // Bytes sent while cut wait here, in order, as TCP would retransmit them once the path is back.
  let held: [net.Socket, Buffer][] = [];
  const pairs = new Set<[net.Socket, net.Socket]>();
  const relay = (from: net.Socket, to: net.Socket) => from.on('data', (d: Buffer) => {
    if (cut) held.push([to, d]);
    else to.write(d);
  });
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    relay(client, upstream);
    relay(upstream, client);
    const end = () => { pairs.delete(pair); client.destroy(); upstream.destroy(); };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  safeTeardown(t, 'blackhole proxy close', () => new Promise<void>((resolve) => {
    for (const [a, b] of pairs) { a.destroy(); b.destroy(); }
    server.close(() => resolve());
  }));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      cut = true;
    },
    heal() {
      cut = false;
      const go = held;
      held = [];
      for (const [to, d] of go) if (!to.destroyed) to.write(d);
    },
  };
}
