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
 *                 flags: bit 0 stdout is a terminal, bit 1 stderr is a terminal,
 *                 bit 2 stdout and stderr are one file (a pipe, tty or -O's
 *                 temp file): the job gets one pipe for both, so their
 *                 order is kept.
 *                 argv[0] is the shim's own argv[0]; argv[1..] are make's
 *                 .SHELLFLAGS words and the recipe line, forwarded unchanged.
 *   0x02 CANCEL   u32 signal number the shim received (INT, TERM, HUP, QUIT,
 *                 or PIPE when its output went away).
 *                 The shim keeps relaying until EXIT, then re-raises it.
 *   0x03 FRESH    after an EXPECT, once it has waited: u32 lag in µs, u32
 *                 retries, u32 count of files still stale, their paths
 *                 (NUL-terminated).
 *   0x04 WROTE    the only frame of a connection, answered by nothing: a
 *                 line the shim runs here without asking (the --mp-local
 *                 list) makes these files. The cwd, then the paths (make's
 *                 $@ and the other targets of its rule, relative to cwd),
 *                 each NUL-terminated. Sent before the line runs, so it
 *                 arrives before any later job that reads them is asked for.
 *   0x05 RESIZE   u16 cols, u16 rows: the terminal the shim's output goes to
 *                 changed size (SIGWINCH) while its job runs; the job's pty
 *                 on the node follows. 0 or a finished job: ignored.
 *
 * Coordinator -> shim
 *   0x11 STDOUT   bytes for fd 1.
 *   0x12 STDERR   bytes for fd 2.
 *   0x13 EXIT     i32 exit code (or -1), i32 signal number (or 0). The shim
 *                 exits with the code, or dies by the signal.
 *   0x14 LOCAL    the path of the shell to exec locally with argv[1..] (no
 *                 NUL; empty = MPMAKE_REAL_SHELL).
 *   0x15 EXPECT   before a successful EXIT: what the job's node saw of its
 *                 targets. u32 wait bound ms, u32 count, the node's name
 *                 (NUL-terminated), then per file: u8 absent, u64 size,
 *                 i64 mtime s, u32 mtime ns, u64 inode (0 unknown), path
 *                 (NUL-terminated). Before handing make the status, the
 *                 shim waits until its own stat() sees each file so
 *                 (see DESIGN.md, shared file systems), answers FRESH, and
 *                 past the bound turns the success into 127 with one
 *                 warning (MPM_ERR_FS_STALE).
 *
 * A REQUEST is answered by exactly one LOCAL, or by output then one EXIT.
 * Errors reach the user as STDERR text followed by EXIT 127.
 */

export const SHIM_PROTOCOL_VERSION = 1;
export const MAX_SHIM_FRAME_BYTES = 64 * 1024 * 1024;

// A plain enum, not `const enum`: transpile-only loaders need the object.
export enum ShimFrame {
  Request = 0x01,
  Cancel = 0x02,
  Fresh = 0x03,
  Wrote = 0x04,
  Resize = 0x05,
  Stdout = 0x11,
  Stderr = 0x12,
  Exit = 0x13,
  Local = 0x14,
  Expect = 0x15,
}

export const SHIM_FLAG_STDOUT_TTY = 1;
export const SHIM_FLAG_STDERR_TTY = 2;
export const SHIM_FLAG_SAME_OUTPUT = 4;

/**
 * Text from the shim: a string when it is valid UTF-8, else the raw bytes,
 * so a Latin-1 file name in a recipe line reaches the node unchanged.
 */
export type ShimText = string | Uint8Array;

export interface ShimRequest {
  umask: number;
  flags: number;
  cols: number;
  rows: number;
  ppid: number;
  cwd: string;
  argv: ShimText[];
  env: Record<string, ShimText>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(bytes: Buffer): ShimText {
  try {
    return utf8.decode(bytes);
  } catch {
    return new Uint8Array(bytes);
  }
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
  const next = (): Buffer => {
    const end = payload.indexOf(0, off);
    if (end < 0) throw new Error('shim request: unterminated string');
    const b = payload.subarray(off, end);
    off = end + 1;
    return b;
  };
  const cwd = next().toString('utf8');
  const argv: ShimText[] = [];
  for (let i = 0; i < argc; i++) argv.push(text(next()));
  const env: Record<string, ShimText> = {};
  for (let i = 0; i < envc; i++) {
    const kv = next();
    const eq = kv.indexOf(0x3d); // '='
    if (eq > 0) env[kv.toString('latin1', 0, eq)] = text(kv.subarray(eq + 1));
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
  const bytes = (t: ShimText): Buffer =>
    typeof t === 'string' ? Buffer.from(t, 'utf8') : Buffer.from(t);
  const envList = Object.entries(req.env).map(([k, v]) =>
    Buffer.concat([Buffer.from(`${k}=`), bytes(v)]),
  );
  head.writeUInt32BE(req.argv.length, 20);
  head.writeUInt32BE(envList.length, 24);
  const nul = Buffer.alloc(1);
  const strings = [bytes(req.cwd), ...req.argv.map(bytes), ...envList].flatMap((b) => [b, nul]);
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

export function resizeFrame(cols: number, rows: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt16BE(cols & 0xffff, 0);
  p.writeUInt16BE(rows & 0xffff, 2);
  return shimFrame(ShimFrame.Resize, p);
}

/** A RESIZE payload: the new size, or undefined when it is not one (short, or a 0). */
export function decodeResize(payload: Buffer): { cols: number; rows: number } | undefined {
  if (payload.length < 4) return undefined;
  const cols = payload.readUInt16BE(0);
  const rows = payload.readUInt16BE(2);
  return cols > 0 && rows > 0 ? { cols, rows } : undefined;
}

/**
 * Splits a byte stream into (type, payload) frames; any chunking. Chunks
 * are kept in a list and joined once per frame, so a 64 MiB frame costs one
 * copy, not one per chunk.
 */
export class ShimFrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  constructor(private readonly maxFrameBytes = MAX_SHIM_FRAME_BYTES) {}

  push(chunk: Buffer): Array<{ type: number; payload: Buffer }> {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Array<{ type: number; payload: Buffer }> = [];
    while (this.buffered >= 4) {
      const head = this.peek(4);
      const len = head.readUInt32BE(0);
      if (len < 1 || len > this.maxFrameBytes) throw new Error(`bad shim frame length ${len}`);
      if (this.buffered < 4 + len) break;
      const frame = this.peek(4 + len);
      this.drop(4 + len);
      out.push({ type: frame[4]!, payload: frame.subarray(5) });
    }
    return out;
  }

  get pending(): number {
    return this.buffered;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private drop(n: number): void {
    const first = this.chunks[0]!;
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
  }
}

/** A file as its writer saw it (the wire's FileSeen, with a resolved path). */
export interface ExpectedFile {
  path: string;
  absent?: boolean | undefined;
  size?: number | undefined;
  mtimeS?: number | undefined;
  mtimeNs?: number | undefined;
  ino?: string | undefined;
}

/** An EXPECT payload (also the input of `mpmake-shim --mp-revalidate`). */
export function expectPayload(
  waitMs: number,
  from: string,
  files: readonly ExpectedFile[],
): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(8);
  head.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.round(waitMs))), 0);
  head.writeUInt32BE(files.length, 4);
  parts.push(head, Buffer.from(`${from}\0`));
  for (const f of files) {
    const e = Buffer.alloc(29);
    e.writeUInt8(f.absent ? 1 : 0, 0);
    e.writeBigUInt64BE(BigInt(f.size ?? 0), 1);
    e.writeBigInt64BE(BigInt(f.mtimeS ?? 0), 9);
    e.writeUInt32BE(f.mtimeNs ?? 0, 17);
    let ino = 0n;
    try {
      ino = BigInt(f.ino ?? 0);
    } catch {
      // not a number: unknown
    }
    e.writeBigUInt64BE(BigInt.asUintN(64, ino), 21);
    parts.push(e, Buffer.from(`${f.path}\0`));
  }
  return Buffer.concat(parts);
}

/** What the shim measured while revalidating (a FRESH payload). */
export interface FreshReport {
  lagMs: number;
  retries: number;
  stale: string[];
}

export function decodeFresh(payload: Buffer): FreshReport {
  if (payload.length < 12) throw new Error('shim FRESH too short');
  const lagMs = payload.readUInt32BE(0) / 1000;
  const retries = payload.readUInt32BE(4);
  const count = payload.readUInt32BE(8);
  const stale = payload
    .subarray(12)
    .toString('utf8')
    .split('\0')
    .slice(0, count)
    .filter((p) => p !== '');
  return { lagMs, retries, stale };
}

/** Decodes an EXPECT payload (the TypeScript fallback shim's side). */
export function decodeExpect(p: Buffer): { waitMs: number; from: string; files: ExpectedFile[] } {
  const waitMs = p.readUInt32BE(0);
  const count = p.readUInt32BE(4);
  let off = 8;
  const str = (): string => {
    const end = p.indexOf(0, off);
    if (end < 0) throw new Error('EXPECT: unterminated string');
    const s = p.toString('utf8', off, end);
    off = end + 1;
    return s;
  };
  const from = str();
  const files: ExpectedFile[] = [];
  for (let i = 0; i < count; i++) {
    const absent = p.readUInt8(off) !== 0;
    const size = Number(p.readBigUInt64BE(off + 1));
    const mtimeS = Number(p.readBigInt64BE(off + 9));
    const mtimeNs = p.readUInt32BE(off + 17);
    const ino = p.readBigUInt64BE(off + 21).toString();
    off += 29;
    const path = str();
    files.push(absent ? { path, absent } : { path, size, mtimeS, mtimeNs, ino });
  }
  return { waitMs, from, files };
}

/** Files a line run on the client without asking makes (a WROTE frame's payload). */
export interface LocalWrites {
  cwd: string;
  paths: string[];
}

export function encodeWrote(w: LocalWrites): Buffer {
  return shimFrame(
    ShimFrame.Wrote,
    Buffer.concat([w.cwd, ...w.paths].map((s) => Buffer.from(`${s}\0`))),
  );
}

export function decodeWrote(payload: Buffer): LocalWrites {
  const words = payload.toString('utf8').split('\0');
  if (words.length < 2 || words[words.length - 1] !== '' || words[0] === '') {
    throw new Error('shim WROTE: not a cwd and NUL-terminated paths');
  }
  return { cwd: words[0]!, paths: words.slice(1, -1).filter((p) => p !== '') };
}

/** A FRESH frame (the TypeScript fallback shim's side). */
export function freshFrame(r: FreshReport): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt32BE(Math.min(0xffffffff, Math.round(r.lagMs * 1000)), 0);
  head.writeUInt32BE(r.retries, 4);
  head.writeUInt32BE(r.stale.length, 8);
  return shimFrame(
    ShimFrame.Fresh,
    Buffer.concat([head, ...r.stale.map((s) => Buffer.from(`${s}\0`))]),
  );
}

/** The warning for a file still stale past the bound (both shims say the same). */
export function staleWarning(
  path: string,
  from: string,
  lagMs: number,
  waitMs: number,
  missing = false,
): string {
  const lag = Math.round(lagMs);
  if (missing) {
    return (
      `mpmake: ${path}, written on ${from}, is still missing here after ${lag} ms ` +
      `(--mp-fs-wait=${waitMs}): this machine keeps a cached "no such file" older than the ` +
      'file (NFS: mount with lookupcache=positive; sshfs: negative_timeout=0), or it was ' +
      'removed since, and make would judge it by stale metadata; failing this line. ' +
      'Raise --mp-fs-wait, or mount with shorter caches [MPM_ERR_FS_STALE]\n'
    );
  }
  return (
    `mpmake: ${path}, written on ${from}, still looks different here after ${lag} ms ` +
    `(--mp-fs-wait=${waitMs}): this machine's file system caches are older than the file ` +
    '(NFS: shorter actimeo, lookupcache=positive; sshfs: dir_cache=no, shorter ' +
    'attr_timeout), and make would judge it by stale metadata; failing this line. ' +
    'Raise --mp-fs-wait, or mount with shorter caches [MPM_ERR_FS_STALE]\n'
  );
}
