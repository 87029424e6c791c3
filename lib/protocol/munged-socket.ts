/**
 * One request to the local munged over its Unix socket, as libmunge makes
 * it, without starting `munge` or `unmunge` (a process start per request:
 * tens of milliseconds each, seconds for a dozen at once on a loaded
 * machine). The wire format is munge's message protocol, version 4 (the
 * same since munge 0.5, 2006): an 11-byte header (magic 0x00606d4b,
 * version, type, retry count, body length; integers big-endian), then a
 * body per type. On Linux munged learns who is asking from the socket
 * itself (SO_PEERCRED), so a request carries no proof of its own: the
 * credential says the uid and gid of this process.
 */
import { connect } from 'node:net';

const MAGIC = 0x00606d4b;
const VERSION = 4;
const HEADER_BYTES = 11;
const ENC_REQ = 2;
const ENC_RSP = 3;
const DEC_REQ = 4;
const DEC_RSP = 5;
/** munge_ctx defaults: the daemon's cipher, MAC, compression and time to live; any decoder. */
const DEFAULT = 1;
const TTL_DEFAULT = 0;
const ANY_ID = 0xffffffff;
/** Longest answer taken (a credential is ~200 bytes, ours carry ~300 bytes of payload). */
const MAX_BODY_BYTES = 256 * 1024;

/** munged's answer to one request: its munge_err_t (0: success) and what it said. */
export interface MungedAnswer {
  /** munge_err_t: 0 success; 8-18 about the credential (munge.h). */
  status: number;
  /** munged's own words for a failed request. */
  error: string;
}

export interface EncodeAnswer extends MungedAnswer {
  /** The credential ("MUNGE:…:"), when status is 0. */
  credential: string;
}

export interface DecodeAnswer extends MungedAnswer {
  uid: number;
  gid: number;
  payload: Buffer;
}

/**
 * The request never reached munged (no socket there, refused, its backlog
 * full): `busy` when asking again soon may work. Nothing was decoded.
 */
export class MungedUnreachable extends Error {
  constructor(
    message: string,
    readonly busy: boolean,
  ) {
    super(message);
    this.name = 'MungedUnreachable';
  }
}

/** munged took the request but gave no whole answer in time (or closed, or sent garbage). */
export class MungedNoAnswer extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MungedNoAnswer';
  }
}

/** connect() errors where munged is there but busy (a Unix socket's full backlog). */
const BUSY_CODES = new Set(['EAGAIN', 'ECONNREFUSED', 'EWOULDBLOCK', 'EINTR']);

function header(type: number, bodyBytes: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.writeUInt32BE(MAGIC, 0);
  h.writeUInt8(VERSION, 4);
  h.writeUInt8(type, 5);
  // Retry count 0, always: munged lets a "retried" decode through its replay check.
  h.writeUInt8(0, 6);
  h.writeUInt32BE(bodyBytes, 7);
  return h;
}

/**
 * Sends one request of `type` and resolves with the body of munged's
 * answer of `answerType`. Rejects with MungedUnreachable when the
 * connection was never made, MungedNoAnswer after that.
 */
function transact(
  socketPath: string,
  type: number,
  body: Buffer,
  answerType: number,
  timeoutMs: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect({ path: socketPath });
    let connected = false;
    let settled = false;
    let got = Buffer.alloc(0);
    const finish = (result: Buffer | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    // Judged after what has already come is read: a starved process runs
    // its due timers before it reads its sockets.
    const timer = setTimeout(
      () =>
        setImmediate(() =>
          finish(
            connected
              ? new MungedNoAnswer(`no answer from munged at ${socketPath} in ${timeoutMs} ms`)
              : new MungedUnreachable(
                  `munged at ${socketPath} did not accept in ${timeoutMs} ms`,
                  true,
                ),
          ),
        ),
      timeoutMs,
    );
    sock.on('connect', () => {
      connected = true;
      sock.write(Buffer.concat([header(type, body.length), body]));
    });
    sock.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length < HEADER_BYTES) return;
      const magic = got.readUInt32BE(0);
      const version = got.readUInt8(4);
      const bodyBytes = got.readUInt32BE(7);
      if (magic !== MAGIC || version !== VERSION || got.readUInt8(5) !== answerType) {
        finish(
          new MungedNoAnswer(
            `munged at ${socketPath} answered in a protocol this client does not speak ` +
              `(magic ${magic.toString(16)}, version ${version})`,
          ),
        );
      } else if (bodyBytes > MAX_BODY_BYTES) {
        finish(new MungedNoAnswer(`munged at ${socketPath} sent a ${bodyBytes}-byte answer`));
      } else if (got.length >= HEADER_BYTES + bodyBytes) {
        finish(got.subarray(HEADER_BYTES, HEADER_BYTES + bodyBytes));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (connected) {
        finish(new MungedNoAnswer(`munged at ${socketPath} dropped the request: ${err.message}`));
        return;
      }
      const why =
        err.code === 'ENOENT'
          ? 'no such socket (is munged running?)'
          : err.code === 'EACCES'
            ? 'permission denied'
            : err.message;
      finish(
        new MungedUnreachable(
          `cannot reach munged at ${socketPath}: ${why}`,
          BUSY_CODES.has(err.code ?? ''),
        ),
      );
    });
    sock.on('close', () =>
      finish(new MungedNoAnswer(`munged at ${socketPath} closed the connection without an answer`)),
    );
  });
}

/** Reads a body field by field; any overrun is a MungedNoAnswer. */
class Reader {
  private at = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly socketPath: string,
  ) {}

  private take(n: number): Buffer {
    if (this.at + n > this.buf.length) {
      throw new MungedNoAnswer(`munged at ${this.socketPath} sent a short answer`);
    }
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  u8(): number {
    return this.take(1).readUInt8(0);
  }

  u32(): number {
    return this.take(4).readUInt32BE(0);
  }

  /** `n` bytes; a string field's trailing NUL dropped with `text`. */
  bytes(n: number): Buffer {
    return this.take(n);
  }

  text(n: number): string {
    const b = this.take(n);
    const nul = b.indexOf(0);
    return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
  }
}

/** Asks munged for a credential over `payload`, for this process's uid and gid. */
export async function encodeRequest(
  socketPath: string,
  payload: Buffer,
  timeoutMs: number,
): Promise<EncodeAnswer> {
  const body = Buffer.alloc(3 + 1 + 4 + 4 + 4 + 4 + payload.length);
  let at = body.writeUInt8(DEFAULT, 0); // cipher
  at = body.writeUInt8(DEFAULT, at); // MAC
  at = body.writeUInt8(DEFAULT, at); // compression
  at = body.writeUInt8(0, at); // realm: none
  at = body.writeUInt32BE(TTL_DEFAULT, at);
  at = body.writeUInt32BE(ANY_ID, at); // any uid may decode it
  at = body.writeUInt32BE(ANY_ID, at); // any gid
  at = body.writeUInt32BE(payload.length, at);
  payload.copy(body, at);
  const r = new Reader(await transact(socketPath, ENC_REQ, body, ENC_RSP, timeoutMs), socketPath);
  const status = r.u8();
  const error = r.text(r.u8());
  const credential = r.text(r.u32());
  return { status, error, credential };
}

/** Asks munged to decode `credential` (this decodes it: a second time is a replay). */
export async function decodeRequest(
  socketPath: string,
  credential: string,
  timeoutMs: number,
): Promise<DecodeAnswer> {
  const text = Buffer.from(credential, 'utf8');
  // The credential travels NUL-terminated, as libmunge sends it.
  const body = Buffer.alloc(4 + text.length + 1);
  body.writeUInt32BE(text.length + 1, 0);
  text.copy(body, 4);
  const r = new Reader(await transact(socketPath, DEC_REQ, body, DEC_RSP, timeoutMs), socketPath);
  const status = r.u8();
  const error = r.text(r.u8());
  r.bytes(3); // cipher, MAC, compression
  r.bytes(r.u8()); // realm
  r.u32(); // time to live
  r.bytes(r.u8()); // address it was made on
  r.u32(); // made at
  r.u32(); // decoded at
  const uid = r.u32();
  const gid = r.u32();
  r.u32(); // uid allowed to decode
  r.u32(); // gid allowed to decode
  const payload = Buffer.from(r.bytes(r.u32()));
  return { status, error, uid, gid, payload };
}
