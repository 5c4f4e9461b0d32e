// Pure encoders and decoders for the transmission phase: requests (compact 28-byte and extended
// 32-byte headers), simple replies, structured chunks (20-byte header) and extended chunks
// (32-byte header), and the payloads of ERROR and BLOCK_STATUS chunks.
// The write* functions fill a caller's buffer so a READ reply can be one allocation.
import {
  EXTENDED_CHUNK_SIZE, EXTENDED_REPLY_MAGIC, EXTENDED_REQUEST_MAGIC, EXTENDED_REQUEST_SIZE, REPLY_TYPE_ERROR_OFFSET,
  REQUEST_MAGIC, REQUEST_SIZE, SIMPLE_REPLY_MAGIC, SIMPLE_REPLY_SIZE, STRUCTURED_CHUNK_SIZE, STRUCTURED_REPLY_MAGIC,
} from './constants.js';
import { BodyReader, protocolError, readU64, writeU64 } from './codec-util.js';

export interface NbdRequest {
  flags: number;
  type: number;
  cookie: bigint;
  offset: number;
  /** Compact headers: u32; extended headers: u64 (payload length for WRITE or PAYLOAD_LEN). */
  length: number;
}

export function requestHeaderSize(extended: boolean): number {
  return extended ? EXTENDED_REQUEST_SIZE : REQUEST_SIZE;
}

export function encodeRequest(req: NbdRequest, extended: boolean): Buffer {
  const b = Buffer.allocUnsafe(requestHeaderSize(extended));
  b.writeUInt32BE(extended ? EXTENDED_REQUEST_MAGIC : REQUEST_MAGIC, 0);
  b.writeUInt16BE(req.flags, 4);
  b.writeUInt16BE(req.type, 6);
  b.writeBigUInt64BE(req.cookie, 8);
  writeU64(b, 16, req.offset);
  if (extended) writeU64(b, 24, req.length);
  else b.writeUInt32BE(req.length, 24);
  return b;
}

/** Decodes a request header; the magic must match the negotiated header style. */
export function decodeRequest(b: Buffer, extended: boolean): NbdRequest {
  const magic = b.readUInt32BE(0);
  if (magic !== (extended ? EXTENDED_REQUEST_MAGIC : REQUEST_MAGIC)) {
    throw protocolError('request', `bad request magic 0x${magic.toString(16)}`);
  }
  return {
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    cookie: b.readBigUInt64BE(8),
    offset: readU64(b, 16),
    length: extended ? readU64(b, 24) : b.readUInt32BE(24),
  };
}

export function writeSimpleReply(b: Buffer, off: number, error: number, cookie: bigint): void {
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, off);
  b.writeUInt32BE(error, off + 4);
  b.writeBigUInt64BE(cookie, off + 8);
}

export function writeStructuredChunkHeader(
  b: Buffer, off: number, flags: number, type: number, cookie: bigint, length: number,
): void {
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, off);
  b.writeUInt16BE(flags, off + 4);
  b.writeUInt16BE(type, off + 6);
  b.writeBigUInt64BE(cookie, off + 8);
  b.writeUInt32BE(length, off + 16);
}

export function writeExtendedChunkHeader(
  b: Buffer, off: number, flags: number, type: number, cookie: bigint, offset: number, length: number,
): void {
  b.writeUInt32BE(EXTENDED_REPLY_MAGIC, off);
  b.writeUInt16BE(flags, off + 4);
  b.writeUInt16BE(type, off + 6);
  b.writeBigUInt64BE(cookie, off + 8);
  writeU64(b, off + 16, offset);
  writeU64(b, off + 24, length);
}

export function encodeSimpleReply(error: number, cookie: bigint): Buffer {
  const b = Buffer.allocUnsafe(SIMPLE_REPLY_SIZE);
  writeSimpleReply(b, 0, error, cookie);
  return b;
}

/** A whole chunk (header + payload); `offset` is only carried by extended chunks. */
export function encodeChunk(
  extended: boolean, flags: number, type: number, cookie: bigint, offset: number, payload: Buffer,
): Buffer {
  const size = extended ? EXTENDED_CHUNK_SIZE : STRUCTURED_CHUNK_SIZE;
  const b = Buffer.allocUnsafe(size + payload.length);
  if (extended) writeExtendedChunkHeader(b, 0, flags, type, cookie, offset, payload.length);
  else writeStructuredChunkHeader(b, 0, flags, type, cookie, payload.length);
  payload.copy(b, size);
  return b;
}

export type ReplyKind = 'simple' | 'structured' | 'extended';

export interface ReplyHeader {
  kind: ReplyKind;
  cookie: bigint;
  /** Simple replies only. */
  error: number;
  flags: number;
  type: number;
  /** Extended chunks only. */
  offset: number;
  /** Payload length of a chunk; 0 for simple replies (their data length comes from the request). */
  length: number;
}

/** Header size for a reply starting with `magic`, or 0 for an unknown magic. */
export function replyHeaderSize(magic: number): number {
  if (magic === SIMPLE_REPLY_MAGIC) return SIMPLE_REPLY_SIZE;
  if (magic === STRUCTURED_REPLY_MAGIC) return STRUCTURED_CHUNK_SIZE;
  if (magic === EXTENDED_REPLY_MAGIC) return EXTENDED_CHUNK_SIZE;
  return 0;
}

export function decodeReplyHeader(b: Buffer): ReplyHeader {
  const magic = b.readUInt32BE(0);
  const h: ReplyHeader = { kind: 'simple', cookie: b.readBigUInt64BE(8), error: 0, flags: 0, type: 0, offset: 0, length: 0 };
  if (magic === SIMPLE_REPLY_MAGIC) {
    h.error = b.readUInt32BE(4);
  } else if (magic === STRUCTURED_REPLY_MAGIC) {
    Object.assign(h, { kind: 'structured', flags: b.readUInt16BE(4), type: b.readUInt16BE(6), length: b.readUInt32BE(16) });
  } else if (magic === EXTENDED_REPLY_MAGIC) {
    Object.assign(h, {
      kind: 'extended', flags: b.readUInt16BE(4), type: b.readUInt16BE(6), offset: readU64(b, 16), length: readU64(b, 24),
    });
  } else {
    throw protocolError('reply', `bad reply magic 0x${magic.toString(16)}`);
  }
  return h;
}

/** ERROR chunk payload: u32 error, u16 message length, message. */
export function encodeErrorPayload(error: number, message: string): Buffer {
  const msg = Buffer.from(message, 'utf8').subarray(0, 4096);
  const b = Buffer.allocUnsafe(6 + msg.length);
  b.writeUInt32BE(error, 0);
  b.writeUInt16BE(msg.length, 4);
  msg.copy(b, 6);
  return b;
}

export function decodeErrorPayload(type: number, data: Buffer): { error: number; message: string; offset?: number } {
  const r = new BodyReader(data, 'ERROR chunk');
  const error = r.u32();
  const message = r.string(r.u16());
  if (type !== REPLY_TYPE_ERROR_OFFSET) return { error, message };
  const offset = r.u64();
  r.end();
  return { error, message, offset };
}

export interface WireExtent { length: number; flags: number }

/**
 * BLOCK_STATUS payload: u32 context id, then u32 length + u32 flags per extent.
 * BLOCK_STATUS_EXT (extended headers): u32 context id, u32 count, then u64 length + u64 flags.
 */
export function encodeBlockStatusPayload(contextId: number, extents: WireExtent[], extended: boolean): Buffer {
  const head = extended ? 8 : 4;
  const each = extended ? 16 : 8;
  const b = Buffer.alloc(head + each * extents.length);
  b.writeUInt32BE(contextId, 0);
  if (extended) b.writeUInt32BE(extents.length, 4);
  extents.forEach((e, i) => {
    const at = head + i * each;
    if (extended) {
      writeU64(b, at, e.length);
      writeU64(b, at + 8, e.flags);
    } else {
      b.writeUInt32BE(e.length, at);
      b.writeUInt32BE(e.flags, at + 4);
    }
  });
  return b;
}

export function decodeBlockStatusPayload(data: Buffer, extended: boolean): { contextId: number; extents: WireExtent[] } {
  const r = new BodyReader(data, extended ? 'BLOCK_STATUS_EXT chunk' : 'BLOCK_STATUS chunk');
  const contextId = r.u32();
  const count = extended ? r.u32() : r.remaining / 8;
  if (!Number.isInteger(count) || count * (extended ? 16 : 8) !== r.remaining) {
    throw protocolError('BLOCK_STATUS chunk', 'payload length does not match its extents');
  }
  const extents: WireExtent[] = [];
  for (let i = 0; i < count; i++) {
    extents.push(extended ? { length: r.u64(), flags: r.u64() } : { length: r.u32(), flags: r.u32() });
  }
  return { contextId, extents };
}
