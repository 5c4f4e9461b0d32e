// Free loopback TCP ports for servers a test starts. They are picked below the kernel's ephemeral
// range (net.ipv4.ip_local_port_range): a port the kernel handed out for listen(0) is also one it
// hands out as the source port of outgoing connections, so between the probe and the server's
// bind another test's client could take it (EADDRINUSE). Below that range only another test's
// pick can collide, and only by chance.
import fs from 'node:fs';
import net from 'node:net';

const LOWEST = 10_000;
const TRIES = 500;

/** The first port of the kernel's ephemeral range (32768 when it cannot be read). */
function ephemeralLow(): number {
  try {
    const low = Number(fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > LOWEST + 1000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/** Whether `port` can be bound on `host` now. */
function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/** `n` consecutive ports free on `host` (a cluster gives controller i the port BASE+i). */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const high = ephemeralLow() - n;
  for (let i = 0; i < TRIES; i++) {
    const base = LOWEST + Math.floor(Math.random() * (high - LOWEST));
    const ports = Array.from({ length: n }, (_, k) => base + k);
    if ((await Promise.all(ports.map((p) => portFree(p, host)))).every(Boolean)) return ports;
  }
  throw new Error(`no ${n} consecutive free ports on ${host} between ${LOWEST} and ${high + n} after ${TRIES} tries`);
}

/** One free port on `host`. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return (await freePorts(1, host))[0];
}
