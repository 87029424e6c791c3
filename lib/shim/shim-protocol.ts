/**
 * The shim <-> coordinator protocol, over a unix socket in mpmake's private
 * (0700) run directory. The shim is a small C program (shim.c) that make
 * starts once per recipe line, so this protocol is plain binary that C can
 * write without a library, not msgpack.
 *
 * Frame: u32 big-endian length N, then N bytes: u8 type, then the payload.
 *
 * Shim -> coordinator
 *   0x01 REQUEST  u32 version (=1), u32 umask, u32 flags, u16 cols, u16 rows,
 *                 u32 ppid (the make that ran the shim), u32 argc, u32 envc,
 *                 then NUL-terminated strings: cwd, argv[0..argc-1],
 *                 env[0..envc-1] ("NAME=value").
 *                 flags: bit 0 stdout is a terminal, bit 1 stderr is a terminal.
 *                 argv[0] is the shim's own argv[0]; argv[1..] are make's
 *                 .SHELLFLAGS words and the recipe line, forwarded unchanged.
 *   0x02 CANCEL   u32 signal number the shim received (INT, TERM, HUP, QUIT).
 *                 The shim keeps relaying until EXIT, then re-raises it.
 *
 * Coordinator -> shim
 *   0x11 STDOUT   bytes for fd 1.
 *   0x12 STDERR   bytes for fd 2.
 *   0x13 EXIT     i32 exit code (or -1), i32 signal number (or 0). The shim
 *                 exits with the code, or dies by the signal.
 *   0x14 LOCAL    the path of the shell to exec locally with argv[1..].
 *
 * A REQUEST is answered by exactly one LOCAL, or by output then one EXIT.
 * Errors reach the user as STDERR text followed by EXIT 127.
 */

export const SHIM_PROTOCOL_VERSION = 1;
export const MAX_SHIM_FRAME_BYTES = 64 * 1024 * 1024;

export const enum ShimFrame {
  Request = 0x01,
  Cancel = 0x02,
  Stdout = 0x11,
  Stderr = 0x12,
  Exit = 0x13,
  Local = 0x14,
}

export const SHIM_FLAG_STDOUT_TTY = 1;
export const SHIM_FLAG_STDERR_TTY = 2;

export interface ShimRequest {
  umask: number;
  flags: number;
  cols: number;
  rows: number;
  ppid: number;
  cwd: string;
  argv: string[];
  env: Record<string, string>;
}

/** Decodes a REQUEST payload (the bytes after the type byte). */
export function decodeRequest(payload: Buffer): ShimRequest {
  if (payload.length < 28) throw new Error('shim request too short');
  const version = payload.readUInt32BE(0);
  if (version !== SHIM_PROTOCOL_VERSION) {
    throw new Error(`shim protocol version ${version}, expected ${SHIM_PROTOCOL_VERSION}`);
  }
  const umask = payload.readUInt32BE(4);
  const flags = payload.readUInt32BE(8);
  const cols = payload.readUInt16BE(12);
  const rows = payload.readUInt16BE(14);
  const ppid = payload.readUInt32BE(16);
  const argc = payload.readUInt32BE(20);
  const envc = payload.readUInt32BE(24);
  let off = 28;
  const next = (): string => {
    const end = payload.indexOf(0, off);
    if (end < 0) throw new Error('shim request: unterminated string');
    const s = payload.toString('utf8', off, end);
    off = end + 1;
    return s;
  };
  const cwd = next();
  const argv: string[] = [];
  for (let i = 0; i < argc; i++) argv.push(next());
  const env: Record<string, string> = {};
  for (let i = 0; i < envc; i++) {
    const kv = next();
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { umask, flags, cols, rows, ppid, cwd, argv, env };
}

/** Encodes a REQUEST frame (used by the TypeScript fallback shim and tests). */
export function encodeRequest(req: ShimRequest): Buffer {
  const head = Buffer.alloc(28);
  head.writeUInt32BE(SHIM_PROTOCOL_VERSION, 0);
  head.writeUInt32BE(req.umask, 4);
  head.writeUInt32BE(req.flags, 8);
  head.writeUInt16BE(req.cols, 12);
  head.writeUInt16BE(req.rows, 14);
  head.writeUInt32BE(req.ppid, 16);
  const envList = Object.entries(req.env).map(([k, v]) => `${k}=${v}`);
  head.writeUInt32BE(req.argv.length, 20);
  head.writeUInt32BE(envList.length, 24);
  const strings = [req.cwd, ...req.argv, ...envList].map((s) => Buffer.from(s + '\0', 'utf8'));
  return shimFrame(ShimFrame.Request, Buffer.concat([head, ...strings]));
}

/** One frame: u32 length, u8 type, payload. */
export function shimFrame(type: ShimFrame, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(5 + payload.length);
  frame.writeUInt32BE(1 + payload.length, 0);
  frame.writeUInt8(type, 4);
  frame.set(payload, 5);
  return frame;
}

export function exitFrame(code: number, signal: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeInt32BE(code, 0);
  p.writeInt32BE(signal, 4);
  return shimFrame(ShimFrame.Exit, p);
}

export function cancelFrame(signal: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(signal, 0);
  return shimFrame(ShimFrame.Cancel, p);
}

/** Splits a byte stream into (type, payload) frames; any chunking. */
export class ShimFrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly maxFrameBytes = MAX_SHIM_FRAME_BYTES) {}

  push(chunk: Buffer): Array<{ type: number; payload: Buffer }> {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Array<{ type: number; payload: Buffer }> = [];
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (len < 1 || len > this.maxFrameBytes) throw new Error(`bad shim frame length ${len}`);
      if (this.buf.length < 4 + len) break;
      out.push({ type: this.buf[4]!, payload: this.buf.subarray(5, 4 + len) });
      this.buf = this.buf.subarray(4 + len);
    }
    return out;
  }

  get pending(): number {
    return this.buf.length;
  }
}
