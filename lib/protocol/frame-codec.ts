// msgpackr's plain build: its main entry loads a native string extractor
// (detect-libc, dlopen: ~60 ms at every mpmake start) that frames this small
// do not need. The long-lived agent turns it on (run-agent.ts).
import { Packr } from 'msgpackr/pack';
import { FrameTooLargeError, ProtocolError } from '../errors.js';

/** Default limit on one frame: 16 MiB (a job's env plus a 128 KiB line fits easily). */
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

// useRecords: false keeps each frame decodable on its own, with no state
// shared across the connection's history.
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });

/** Encodes one message as a frame: 4-byte big-endian length, then msgpack. */
export function encodeFrame(message: unknown): Buffer {
  const body = packr.pack(message);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, 4);
  return frame;
}

/**
 * Incremental frame decoder: accepts any chunking, rejects an oversized
 * length before buffering its body, and reports EOF inside a frame.
 * `push` returns the decoded values (not yet validated as messages).
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need = -1; // body length of the frame in progress; -1 = reading header
  /** The limit on frames not yet started; an agent raises it once a client has authenticated. */
  constructor(public maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  push(chunk: Buffer): unknown[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: unknown[] = [];
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < 4) break;
        const header = this.take(4);
        const length = header.readUInt32BE(0);
        if (length > this.maxFrameBytes) throw new FrameTooLargeError(length, this.maxFrameBytes);
        this.need = length;
      }
      if (this.buffered < this.need) break;
      const body = this.take(this.need);
      this.need = -1;
      try {
        out.push(packr.unpack(body));
      } catch (cause) {
        throw new ProtocolError('invalid msgpack in frame', { cause });
      }
    }
    return out;
  }

  /** Call at end of stream: throws when a frame was cut off. */
  end(): void {
    if (this.buffered > 0 || this.need >= 0) {
      throw new ProtocolError('connection ended mid-frame');
    }
  }

  private take(n: number): Buffer {
    let result: Buffer;
    const first = this.chunks[0]!;
    if (first.length >= n) {
      result = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      result = Buffer.allocUnsafe(n);
      let off = 0;
      while (off < n) {
        const c = this.chunks[0]!;
        const k = Math.min(c.length, n - off);
        c.copy(result, off, 0, k);
        off += k;
        if (k === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(k);
      }
    }
    this.buffered -= n;
    return result;
  }
}
