// Option haggling (fixed newstyle): one synchronous handler per option, each returning the replies
// to send and what the session does next. No socket here; the session writes the replies.
import {
  decodeInfoRequest, decodeMetaContextRequest, encodeExportNameReply, encodeInfo, encodeMetaContextReply,
  encodeOptionReply, encodeServerReply,
} from './codec-handshake.js';
import {
  CONTEXT_BASE_ALLOCATION, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, INFO_BLOCK_SIZE, INFO_DESCRIPTION, INFO_EXPORT,
  INFO_NAME, MAX_STRING, OPT_ABORT, OPT_EXPORT_NAME, OPT_EXTENDED_HEADERS, OPT_GO, OPT_INFO, OPT_LIST,
  OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT, OPT_STARTTLS, OPT_STRUCTURED_REPLY, REP_ACK, REP_ERR_INVALID,
  REP_ERR_POLICY, REP_ERR_SHUTDOWN, REP_ERR_TLS_REQD, REP_ERR_TOO_BIG, REP_ERR_UNKNOWN, REP_ERR_UNSUP, REP_INFO,
  REP_META_CONTEXT, REP_SERVER,
} from './constants.js';
import { type ExportRegistry, type ServedExport, transmissionFlags } from './exports.js';
import type { TlsMode } from './tls.js';

/** The id the server gives base:allocation. */
export const BASE_ALLOCATION_ID = 1;

export const SERVER_HANDSHAKE_FLAGS = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES;

export interface HandshakeEnv {
  exports: ExportRegistry;
  shuttingDown: boolean;
  /** STARTTLS policy (default off). */
  tls?: TlsMode;
}

/** What the client negotiated so far. */
export class HandshakeState {
  fixedNewstyle = false;
  /** STARTTLS was acknowledged: everything after it runs over TLS. */
  tls = false;
  noZeroes = false;
  structured = false;
  extended = false;
  /** Export the meta context selection was made for, and whether base:allocation is selected. */
  metaExport: ServedExport | null = null;
  baseAllocation = false;

  /** STARTTLS forgets everything negotiated before it (the spec's rule; a MitM may have sent it). */
  startTls(): void {
    this.tls = true;
    this.structured = false;
    this.extended = false;
    this.metaExport = null;
    this.baseAllocation = false;
  }
}

export type OptionOutcome =
  | { next: 'options' | 'close'; replies: Buffer[] }
  /** The ACK is sent in plain text, then the connection upgrades to TLS. */
  | { next: 'starttls'; replies: Buffer[] }
  | { next: 'transmission'; replies: Buffer[]; export: ServedExport; contextId: number };

/** Accepts the client flags, or returns false when the connection must be dropped. */
export function acceptClientFlags(state: HandshakeState, flags: number): boolean {
  if ((flags & ~SERVER_HANDSHAKE_FLAGS) !== 0) return false;
  state.fixedNewstyle = (flags & FLAG_FIXED_NEWSTYLE) !== 0;
  state.noZeroes = (flags & FLAG_NO_ZEROES) !== 0;
  return true;
}

function reply(option: number, type: number, data?: Buffer): Buffer {
  return encodeOptionReply(option, type, data);
}

function fail(option: number, type: number, message: string): OptionOutcome {
  return { next: 'options', replies: [reply(option, type, Buffer.from(message, 'utf8'))] };
}

/** Handles one option; `data` is null when its body was too large and skipped. */
export function handleOption(state: HandshakeState, env: HandshakeEnv, option: number, data: Buffer | null): OptionOutcome {
  if (tlsRequired(state, env) && option !== OPT_STARTTLS && option !== OPT_ABORT) {
    // FORCEDTLS: EXPORT_NAME cannot be refused with a reply, so it closes the connection.
    if (option === OPT_EXPORT_NAME) return { next: 'close', replies: [] };
    return fail(option, REP_ERR_TLS_REQD, 'this server requires TLS: send STARTTLS first');
  }
  if (option === OPT_EXPORT_NAME) return exportName(state, env, data);
  if (option === OPT_ABORT) return { next: 'close', replies: [reply(option, REP_ACK)] };
  if (env.shuttingDown) return fail(option, REP_ERR_SHUTDOWN, 'server is shutting down');
  if (data === null) return fail(option, REP_ERR_TOO_BIG, 'option data too large');
  switch (option) {
    case OPT_LIST: return list(env, data);
    case OPT_STARTTLS: return startTls(state, env, data);
    case OPT_INFO:
    case OPT_GO: return infoOrGo(state, env, option, data);
    case OPT_STRUCTURED_REPLY: return structuredReply(state, data);
    case OPT_EXTENDED_HEADERS: return extendedHeaders(state, data);
    case OPT_LIST_META_CONTEXT:
    case OPT_SET_META_CONTEXT: return metaContext(state, env, option, data);
    default: return fail(option, REP_ERR_UNSUP, `option ${option} is not supported`);
  }
}

function tlsRequired(state: HandshakeState, env: HandshakeEnv): boolean {
  return env.tls === 'require' && !state.tls;
}

function startTls(state: HandshakeState, env: HandshakeEnv, data: Buffer): OptionOutcome {
  if ((env.tls ?? 'off') === 'off' || !state.fixedNewstyle) return fail(OPT_STARTTLS, REP_ERR_POLICY, 'TLS is not offered by this server');
  if (state.tls) return fail(OPT_STARTTLS, REP_ERR_INVALID, 'TLS is already active');
  if (data.length !== 0) return fail(OPT_STARTTLS, REP_ERR_INVALID, 'STARTTLS takes no data');
  state.startTls();
  return { next: 'starttls', replies: [reply(OPT_STARTTLS, REP_ACK)] };
}

function exportName(state: HandshakeState, env: HandshakeEnv, data: Buffer | null): OptionOutcome {
  // EXPORT_NAME cannot carry an error: any failure closes the connection.
  const exp = data && !env.shuttingDown ? env.exports.lookup(data.toString('utf8')) : undefined;
  if (!exp) return { next: 'close', replies: [] };
  const flags = transmissionFlags(exp, state.structured);
  return {
    next: 'transmission',
    replies: [encodeExportNameReply(exp.device.size, flags, state.noZeroes)],
    export: exp,
    contextId: selectedContext(state, exp),
  };
}

function selectedContext(state: HandshakeState, exp: ServedExport): number {
  return state.baseAllocation && state.metaExport === exp ? BASE_ALLOCATION_ID : 0;
}

function list(env: HandshakeEnv, data: Buffer): OptionOutcome {
  if (data.length !== 0) return fail(OPT_LIST, REP_ERR_INVALID, 'LIST takes no data');
  const replies = env.exports.list().map((e) => reply(OPT_LIST, REP_SERVER, encodeServerReply(e.name, e.description)));
  replies.push(reply(OPT_LIST, REP_ACK));
  return { next: 'options', replies };
}

function infoOrGo(state: HandshakeState, env: HandshakeEnv, option: number, data: Buffer): OptionOutcome {
  let request: { name: string; infos: number[] };
  try {
    request = decodeInfoRequest(data);
  } catch {
    return fail(option, REP_ERR_INVALID, 'malformed INFO/GO request');
  }
  if (Buffer.byteLength(request.name) > MAX_STRING) return fail(option, REP_ERR_INVALID, 'export name too long');
  const exp = env.exports.lookup(request.name);
  if (!exp) return fail(option, REP_ERR_UNKNOWN, `no export named '${request.name}'`);
  const { size } = exp.device;
  const { minimum, preferred, maximum } = exp.device.blockSizes;
  const infos = [
    encodeInfo({ type: INFO_EXPORT, size, transmissionFlags: transmissionFlags(exp, state.structured) }),
    encodeInfo({ type: INFO_BLOCK_SIZE, minimum, preferred, maximum }),
  ];
  if (request.infos.includes(INFO_NAME)) infos.push(encodeInfo({ type: INFO_NAME, name: exp.name }));
  if (request.infos.includes(INFO_DESCRIPTION) && exp.description) {
    infos.push(encodeInfo({ type: INFO_DESCRIPTION, description: exp.description }));
  }
  const replies = infos.map((i) => reply(option, REP_INFO, i));
  replies.push(reply(option, REP_ACK));
  if (option === OPT_INFO) return { next: 'options', replies };
  return { next: 'transmission', replies, export: exp, contextId: selectedContext(state, exp) };
}

function structuredReply(state: HandshakeState, data: Buffer): OptionOutcome {
  if (data.length !== 0) return fail(OPT_STRUCTURED_REPLY, REP_ERR_INVALID, 'STRUCTURED_REPLY takes no data');
  if (state.structured) return fail(OPT_STRUCTURED_REPLY, REP_ERR_INVALID, 'structured replies already negotiated');
  state.structured = true;
  return { next: 'options', replies: [reply(OPT_STRUCTURED_REPLY, REP_ACK)] };
}

function extendedHeaders(state: HandshakeState, data: Buffer): OptionOutcome {
  if (data.length !== 0) return fail(OPT_EXTENDED_HEADERS, REP_ERR_INVALID, 'EXTENDED_HEADERS takes no data');
  if (state.extended) return fail(OPT_EXTENDED_HEADERS, REP_ERR_INVALID, 'extended headers already negotiated');
  state.extended = true;
  state.structured = true;
  return { next: 'options', replies: [reply(OPT_EXTENDED_HEADERS, REP_ACK)] };
}

/** LIST_META_CONTEXT lists, SET_META_CONTEXT selects; base:allocation is the one context served. */
function metaContext(state: HandshakeState, env: HandshakeEnv, option: number, data: Buffer): OptionOutcome {
  const isSet = option === OPT_SET_META_CONTEXT;
  if (isSet && !state.structured) return fail(option, REP_ERR_INVALID, 'negotiate structured replies first');
  let request: { name: string; queries: string[] };
  try {
    request = decodeMetaContextRequest(data);
  } catch {
    return fail(option, REP_ERR_INVALID, 'malformed meta context request');
  }
  if ([request.name, ...request.queries].some((s) => Buffer.byteLength(s) > MAX_STRING)) {
    return fail(option, REP_ERR_TOO_BIG, 'string longer than 4096 bytes');
  }
  const exp = env.exports.lookup(request.name);
  if (!exp) return fail(option, REP_ERR_UNKNOWN, `no export named '${request.name}'`);
  const matches = isSet
    ? request.queries.includes(CONTEXT_BASE_ALLOCATION)
    : request.queries.length === 0 || request.queries.some((q) => q === 'base:' || q === CONTEXT_BASE_ALLOCATION);
  if (isSet) {
    state.metaExport = exp;
    state.baseAllocation = matches;
  }
  const replies = matches ? [reply(option, REP_META_CONTEXT, encodeMetaContextReply(isSet ? BASE_ALLOCATION_ID : 0, CONTEXT_BASE_ALLOCATION))] : [];
  replies.push(reply(option, REP_ACK));
  return { next: 'options', replies };
}
