// Pure encoders and decoders for the fixed-newstyle handshake: greeting, client flags, options,
// option replies, the EXPORT_NAME reply, and the bodies of INFO/GO, LIST and META_CONTEXT.
// Decoders of variable bodies throw NbdraidError('EPROTO') on malformed input.
import {
  CLIENT_FLAGS_SIZE, EXPORT_NAME_REPLY_ZEROES, GREETING_SIZE, IHAVEOPT, INFO_BLOCK_SIZE, INFO_DESCRIPTION,
  INFO_EXPORT, INFO_NAME, NBD_MAGIC, OPTION_HEADER_SIZE, OPTION_REPLY_HEADER_SIZE, OPTION_REPLY_MAGIC,
} from './constants.js';
import { BodyReader, protocolError, readU64, u16, u32, u64, writeU64 } from './codec-util.js';

export function encodeGreeting(handshakeFlags: number): Buffer {
  const b = Buffer.alloc(GREETING_SIZE);
  b.writeBigUInt64BE(NBD_MAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(handshakeFlags, 16);
  return b;
}

export function decodeGreeting(b: Buffer): { handshakeFlags: number } {
  if (b.readBigUInt64BE(0) !== NBD_MAGIC || b.readBigUInt64BE(8) !== IHAVEOPT) {
    throw protocolError('greeting', 'not a fixed-newstyle NBD server (bad magic)');
  }
  return { handshakeFlags: b.readUInt16BE(16) };
}

export function encodeClientFlags(flags: number): Buffer {
  const b = Buffer.alloc(CLIENT_FLAGS_SIZE);
  b.writeUInt32BE(flags >>> 0, 0);
  return b;
}

export function decodeClientFlags(b: Buffer): number {
  return b.readUInt32BE(0);
}

export function encodeOption(option: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(OPTION_HEADER_SIZE + data.length);
  b.writeBigUInt64BE(IHAVEOPT, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(data.length, 12);
  data.copy(b, OPTION_HEADER_SIZE);
  return b;
}

export interface OptionHeader { option: number; length: number }

export function decodeOptionHeader(b: Buffer): OptionHeader {
  if (b.readBigUInt64BE(0) !== IHAVEOPT) throw protocolError('option', 'bad option magic');
  return { option: b.readUInt32BE(8), length: b.readUInt32BE(12) };
}

export function encodeOptionReply(option: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(OPTION_REPLY_HEADER_SIZE + data.length);
  b.writeBigUInt64BE(OPTION_REPLY_MAGIC, 0);
  b.writeUInt32BE(option >>> 0, 8);
  b.writeUInt32BE(type >>> 0, 12);
  b.writeUInt32BE(data.length, 16);
  data.copy(b, OPTION_REPLY_HEADER_SIZE);
  return b;
}

export interface OptionReplyHeader { option: number; type: number; length: number }

export function decodeOptionReplyHeader(b: Buffer): OptionReplyHeader {
  if (b.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw protocolError('option reply', 'bad option reply magic');
  return { option: b.readUInt32BE(8), type: b.readUInt32BE(12), length: b.readUInt32BE(16) };
}

/** The unframed reply to EXPORT_NAME: size, transmission flags, 124 zeroes unless NO_ZEROES. */
export function encodeExportNameReply(size: number, transmissionFlags: number, noZeroes: boolean): Buffer {
  const b = Buffer.alloc(10 + (noZeroes ? 0 : EXPORT_NAME_REPLY_ZEROES));
  writeU64(b, 0, size);
  b.writeUInt16BE(transmissionFlags, 8);
  return b;
}

export function decodeExportNameReply(b: Buffer): { size: number; transmissionFlags: number } {
  return { size: readU64(b, 0), transmissionFlags: b.readUInt16BE(8) };
}

/** INFO / GO request body: u32 name length, name, u16 count, count x u16 info type. */
export function encodeInfoRequest(name: string, infos: number[]): Buffer {
  const n = Buffer.from(name, 'utf8');
  return Buffer.concat([u32(n.length), n, u16(infos.length), ...infos.map(u16)]);
}

export function decodeInfoRequest(data: Buffer): { name: string; infos: number[] } {
  const r = new BodyReader(data, 'INFO/GO');
  const name = r.string(r.u32());
  const count = r.u16();
  const infos: number[] = [];
  for (let i = 0; i < count; i++) infos.push(r.u16());
  r.end();
  return { name, infos };
}

export type Info =
  | { type: typeof INFO_EXPORT; size: number; transmissionFlags: number }
  | { type: typeof INFO_NAME; name: string }
  | { type: typeof INFO_DESCRIPTION; description: string }
  | { type: typeof INFO_BLOCK_SIZE; minimum: number; preferred: number; maximum: number }
  | { type: number; raw: Buffer };

export function encodeInfo(info: Info): Buffer {
  if ('size' in info) return Buffer.concat([u16(INFO_EXPORT), u64(info.size), u16(info.transmissionFlags)]);
  if ('name' in info) return Buffer.concat([u16(INFO_NAME), Buffer.from(info.name, 'utf8')]);
  if ('description' in info) return Buffer.concat([u16(INFO_DESCRIPTION), Buffer.from(info.description, 'utf8')]);
  if ('minimum' in info) {
    return Buffer.concat([u16(INFO_BLOCK_SIZE), u32(info.minimum), u32(info.preferred), u32(info.maximum)]);
  }
  return Buffer.concat([u16(info.type), info.raw]);
}

export function decodeInfo(data: Buffer): Info {
  const r = new BodyReader(data, 'REP_INFO');
  const type = r.u16();
  let info: Info;
  switch (type) {
    case INFO_EXPORT: info = { type, size: r.u64(), transmissionFlags: r.u16() }; break;
    case INFO_NAME: return { type, name: r.string(r.remaining) };
    case INFO_DESCRIPTION: return { type, description: r.string(r.remaining) };
    case INFO_BLOCK_SIZE: info = { type, minimum: r.u32(), preferred: r.u32(), maximum: r.u32() }; break;
    default: return { type, raw: r.bytes(r.remaining) };
  }
  r.end();
  return info;
}

/** REP_SERVER body: u32 name length, name, then a human-readable description. */
export function encodeServerReply(name: string, description = ''): Buffer {
  const n = Buffer.from(name, 'utf8');
  return Buffer.concat([u32(n.length), n, Buffer.from(description, 'utf8')]);
}

export function decodeServerReply(data: Buffer): { name: string; description: string } {
  const r = new BodyReader(data, 'REP_SERVER');
  const name = r.string(r.u32());
  return { name, description: r.string(r.remaining) };
}

/** LIST/SET_META_CONTEXT body: u32 name length, name, u32 query count, queries (u32 length + string). */
export function encodeMetaContextRequest(name: string, queries: string[]): Buffer {
  const parts = [u32(Buffer.byteLength(name)), Buffer.from(name, 'utf8'), u32(queries.length)];
  for (const q of queries) parts.push(u32(Buffer.byteLength(q)), Buffer.from(q, 'utf8'));
  return Buffer.concat(parts);
}

export function decodeMetaContextRequest(data: Buffer): { name: string; queries: string[] } {
  const r = new BodyReader(data, 'META_CONTEXT');
  const name = r.string(r.u32());
  const count = r.u32();
  if (count > r.remaining / 4) throw protocolError('META_CONTEXT', `query count ${count} exceeds the body`);
  const queries: string[] = [];
  for (let i = 0; i < count; i++) queries.push(r.string(r.u32()));
  r.end();
  return { name, queries };
}

/** REP_META_CONTEXT body: u32 context id, name. */
export function encodeMetaContextReply(id: number, name: string): Buffer {
  return Buffer.concat([u32(id), Buffer.from(name, 'utf8')]);
}

export function decodeMetaContextReply(data: Buffer): { id: number; name: string } {
  const r = new BodyReader(data, 'REP_META_CONTEXT');
  return { id: r.u32(), name: r.string(r.remaining) };
}
