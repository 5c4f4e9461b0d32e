// Replies of the transmission phase in the negotiated style: simple replies, structured chunks,
// or extended chunks (which echo the request offset). Each reply is one buffer and one send().
import type { Extent } from './block-device.js';
import {
  encodeBlockStatusPayload, encodeChunk, encodeErrorPayload, encodeSimpleReply, writeExtendedChunkHeader,
  writeSimpleReply, writeStructuredChunkHeader, type NbdRequest,
} from './codec-transmission.js';
import { writeU64 } from './codec-util.js';
import {
  EXTENDED_CHUNK_SIZE, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, REPLY_TYPE_BLOCK_STATUS_EXT,
  REPLY_TYPE_ERROR, REPLY_TYPE_NONE, REPLY_TYPE_OFFSET_DATA, SIMPLE_REPLY_SIZE, STRUCTURED_CHUNK_SIZE,
} from './constants.js';

const EMPTY = Buffer.alloc(0);

export class ReplyWriter {
  /** Bytes in front of READ data in the reply buffer: the header (and the chunk's u64 offset). */
  readonly readPrefix: number;

  constructor(
    private readonly send: (b: Buffer, done?: () => void) => void,
    private readonly structured: boolean,
    private readonly extended: boolean,
  ) {
    this.readPrefix = extended ? EXTENDED_CHUNK_SIZE + 8 : structured ? STRUCTURED_CHUNK_SIZE + 8 : SIMPLE_REPLY_SIZE;
  }

  ok(req: NbdRequest): void {
    if (this.extended) this.send(encodeChunk(true, REPLY_FLAG_DONE, REPLY_TYPE_NONE, req.cookie, req.offset, EMPTY));
    else this.send(encodeSimpleReply(0, req.cookie));
  }

  /** Structured replies carry the message; simple replies only the errno (READ data never follows). */
  error(req: NbdRequest, errno: number, message: string): void {
    if (!this.structured) {
      this.send(encodeSimpleReply(errno, req.cookie));
      return;
    }
    const payload = encodeErrorPayload(errno, message);
    this.send(encodeChunk(this.extended, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, req.cookie, req.offset, payload));
  }

  /**
   * `buf` holds readPrefix header bytes followed by the data already read; `done` runs when the
   * connection no longer needs it.
   */
  read(req: NbdRequest, buf: Buffer, done?: () => void): void {
    const dataLength = buf.length - this.readPrefix;
    if (this.extended) {
      writeExtendedChunkHeader(buf, 0, REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, req.cookie, req.offset, 8 + dataLength);
      writeU64(buf, EXTENDED_CHUNK_SIZE, req.offset);
    } else if (this.structured) {
      writeStructuredChunkHeader(buf, 0, REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, req.cookie, 8 + dataLength);
      writeU64(buf, STRUCTURED_CHUNK_SIZE, req.offset);
    } else {
      writeSimpleReply(buf, 0, 0, req.cookie);
    }
    this.send(buf, done);
  }

  blockStatus(req: NbdRequest, contextId: number, extents: Extent[]): void {
    const type = this.extended ? REPLY_TYPE_BLOCK_STATUS_EXT : REPLY_TYPE_BLOCK_STATUS;
    const payload = encodeBlockStatusPayload(contextId, extents, this.extended);
    this.send(encodeChunk(this.extended, REPLY_FLAG_DONE, type, req.cookie, req.offset, payload));
  }
}
