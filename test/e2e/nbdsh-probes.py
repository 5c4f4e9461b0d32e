# Malformed-request probes, run inside nbdsh by transport-nbdsh.test.ts:
#   nbdsh --base-allocation -u URI -c "exec(open('test/e2e/nbdsh-probes.py').read())"
# nbdsh provides `h`, connected with base:allocation selected. Strict mode is switched off so
# libnbd sends out-of-range, zero-length, oversized and badly flagged requests as they are. After
# every probe the same connection must still serve a read. libnbd cannot send an unknown command
# type or a bad magic, so those probes speak the protocol over a raw socket.
# Environment: PROBE_SET (rw | ro), PROBE_PORT or PROBE_SOCKET, PROBE_EXPORT.
# Prints one JSON object per line: {"probe": name, "errno": n, "next": "ok" | error text}.
import json
import os
import nbd
import socket
import struct

h.set_strict_mode(0)  # `h`: the handle nbdsh connected before running this file
size = h.get_size()
maximum = h.get_block_size(nbd.SIZE_MAXIMUM)
minimum = h.get_block_size(nbd.SIZE_MINIMUM) or 1
REF = bytes(range(256)) * 16  # 4 KiB written at offset 0 before the probes; reads must return it


def next_request_served(conn):
    try:
        got = conn.pread(len(REF), 0)
        return 'ok' if got == REF else 'data differs'
    except nbd.Error as e:
        return e.string


def probe(name, fn, conn=None):
    conn = conn or h
    try:
        fn()
        errno = 0
    except nbd.Error as e:
        errno = e.errnum
    print(json.dumps({'probe': name, 'errno': errno, 'next': next_request_served(conn)}), flush=True)


def ignore_extents(*_):
    return 0



def rw_probes():
    over = maximum * 2
    probe('read past end', lambda: h.pread(512, size))
    probe('read across end', lambda: h.pread(1024, size - 512))
    probe('read offset wraps 2^64', lambda: h.pread(512, 2**64 - 256))
    probe('write past end', lambda: h.pwrite(bytes(512), size))
    probe('write across end', lambda: h.pwrite(bytes(1024), size - 512))
    probe('write zeroes past end', lambda: h.zero(512, size))
    probe('trim past end', lambda: h.trim(512, size))
    probe('block status past end', lambda: h.block_status(512, size, ignore_extents))
    probe('read zero-length', lambda: h.pread(0, 4096))
    probe('write zero-length', lambda: h.pwrite(b'', 4096))
    probe('trim zero-length', lambda: h.trim(0, 4096))
    probe('write zeroes zero-length', lambda: h.zero(0, 4096))
    probe('read over maximum', lambda: h.pread(over, 0))
    probe('write over maximum', lambda: h.pwrite(bytes(maximum + 4096), 1 << 20))
    probe('trim over maximum', lambda: h.trim(over, 1 << 20))
    probe('read unknown flag 0x40', lambda: h.pread(512, 0, nbd.CMD_FLAG_MASK + 1))
    probe('read with REQ_ONE', lambda: h.pread(512, 0, nbd.CMD_FLAG_REQ_ONE))
    probe('write with DF', lambda: h.pwrite(bytes(512), 1 << 20, nbd.CMD_FLAG_DF))
    probe('trim with NO_HOLE', lambda: h.trim(4096, 1 << 20, nbd.CMD_FLAG_NO_HOLE))
    probe('read with FUA', lambda: h.pread(512, 0, nbd.CMD_FLAG_FUA))
    probe('read with DF, one chunk', lambda: h.pread(1 << 20, 0, nbd.CMD_FLAG_DF))
    if minimum > 1:
        probe('read misaligned offset', lambda: h.pread(minimum, minimum // 2))
        probe('read misaligned length', lambda: h.pread(minimum // 2, 0))
        probe('write misaligned', lambda: h.pwrite(bytes(minimum), minimum // 2))
    bare = nbd.NBD()  # a second connection with no metadata context selected
    bare.set_strict_mode(0)
    bare.connect_uri(h.get_uri())
    probe('block status without a context', lambda: bare.block_status(4096, 0, ignore_extents), bare)
    raw_probes()


def ro_probes():
    probe('write on read-only', lambda: h.pwrite(bytes(512), 4096))
    probe('trim on read-only', lambda: h.trim(4096, 4096))
    probe('write zeroes on read-only', lambda: h.zero(4096, 4096))


def recv_exactly(s, n):
    buf = b''
    while len(buf) < n:
        part = s.recv(n - len(buf))
        if not part:
            raise EOFError('server closed the connection')
        buf += part
    return buf


def raw_connect():
    """Fixed newstyle handshake with NO_ZEROES and OPT_GO; simple replies only."""
    if os.environ.get('PROBE_SOCKET'):
        s = socket.socket(socket.AF_UNIX)
        s.connect(os.environ['PROBE_SOCKET'])
    else:
        s = socket.create_connection(('127.0.0.1', int(os.environ['PROBE_PORT'])))
    s.settimeout(10)
    greeting = recv_exactly(s, 18)
    assert greeting[:16] == b'NBDMAGICIHAVEOPT', greeting
    s.sendall(struct.pack('>I', 3))
    name = os.environ.get('PROBE_EXPORT', '').encode()
    data = struct.pack('>I', len(name)) + name + struct.pack('>H', 0)
    s.sendall(struct.pack('>QII', 0x49484156454F5054, 7, len(data)) + data)
    while True:
        _, _, kind, length = struct.unpack('>QIII', recv_exactly(s, 20))
        recv_exactly(s, length)
        if kind == 1:
            return s
        if kind & 0x80000000:
            raise RuntimeError('OPT_GO refused: 0x%x' % kind)


def raw_request(s, kind, offset, length, magic=0x25609513, cookie=7):
    s.sendall(struct.pack('>IHHQQI', magic, 0, kind, cookie, offset, length))


def raw_read_served(s):
    raw_request(s, 0, 0, len(REF), cookie=8)
    _, err, cookie = struct.unpack('>IIQ', recv_exactly(s, 16))
    if err != 0:
        return 'read failed with %d' % err
    return 'ok' if recv_exactly(s, len(REF)) == REF and cookie == 8 else 'data differs'


def raw_probes():
    s = raw_connect()
    raw_request(s, 99, 0, 0)
    _, err, _ = struct.unpack('>IIQ', recv_exactly(s, 16))
    print(json.dumps({'probe': 'unknown command 99', 'errno': err, 'next': raw_read_served(s)}), flush=True)
    s.close()
    s = raw_connect()
    raw_request(s, 0, 0, 512, magic=0x12345678)
    try:
        got = s.recv(16)
        outcome = 'closed' if got == b'' else 'replied'
    except (ConnectionResetError, socket.timeout) as e:
        outcome = 'closed' if isinstance(e, ConnectionResetError) else 'timed out'
    s.close()
    print(json.dumps({'probe': 'bad request magic', 'outcome': outcome, 'next': next_request_served(h)}), flush=True)


if os.environ['PROBE_SET'] == 'rw':
    h.pwrite(REF, 0)
    rw_probes()
else:
    ro_probes()
