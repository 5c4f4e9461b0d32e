// Reading a server connection into buffers of our choosing. A socket accepted by net.Server reads
// through a fresh 64 KiB buffer per read, which the NBD session then copies into each WRITE
// payload: on loopback that allocation and copy cost more than the kernel's own copy, and
// receiving 1 MiB writes ran at under half the speed of reading into the payload directly.
// Node's `onread` option reads into a buffer supplied per read, but net.Server does not pass it
// to the sockets it creates; so an accepted socket that has not started reading (the server
// listens with pauseOnConnect) is rebuilt over the same handle with `onread`, as net.Server
// itself builds sockets over handles.
import net from 'node:net';

export interface ReadSink {
  /** The buffer the next read goes into (any length > 0). */
  target(): Buffer;
  /** `n` bytes were read into `into`, the buffer target() last returned. */
  filled(n: number, into: Buffer): void;
}

interface HandleOwner { _handle?: { reading?: boolean } | null }

/**
 * A socket reading into `sink`'s buffers over `raw`'s connection, or null when `raw` cannot be
 * rebuilt (it already reads, or is not backed by a stream handle): the caller then uses 'data'.
 * The returned socket starts paused; `raw` is released and must not be used again.
 */
export function directReadSocket(raw: net.Socket, sink: ReadSink): net.Socket | null {
  const owner = raw as unknown as HandleOwner;
  const handle = owner._handle;
  if (!handle || handle.reading !== false || raw.readableLength > 0) return null;
  owner._handle = null; // raw gives up the connection: destroying it now closes nothing
  raw.destroy();
  const options = {
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer: () => sink.target(),
      callback: (n: number, into: Uint8Array) => {
        sink.filled(n, into as Buffer);
        return true;
      },
    },
  };
  const socket = new net.Socket(options as net.SocketConstructorOpts);
  socket.pause();
  return socket;
}
