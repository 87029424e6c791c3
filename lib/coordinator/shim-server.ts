import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { constants as osConstants } from 'node:os';
import {
  decodeFresh,
  decodeRequest,
  decodeResize,
  decodeWrote,
  exitFrame,
  expectPayload,
  type ExpectedFile,
  type FreshReport,
  type LocalWrites,
  ShimFrame,
  ShimFrameReader,
  shimFrame,
  type ShimRequest,
} from '../shim/shim-protocol.js';
import { tracer } from '../trace.js';

const trace = tracer('shim');

export interface ShimConnectionEvents {
  /** The shim received this signal (name) and asks to cancel its job. */
  cancel: [string];
  /** The shim's terminal changed size while its job runs. */
  resize: [number, number];
  /** The shim went away (killed, or done). */
  close: [];
  /** The shim revalidated the job's targets: how long it waited. */
  fresh: [FreshReport];
}

/** What the shim must wait for before make gets a success. */
export interface Expectation {
  waitMs: number;
  /** The node that wrote the files, for the warning. */
  from: string;
  files: ExpectedFile[];
}

/** The coordinator's end of one shim's connection. */
export class ShimConnection extends EventEmitter<ShimConnectionEvents> {
  private ended = false;
  constructor(private readonly socket: Socket) {
    super();
  }

  get closed(): boolean {
    return this.ended || this.socket.destroyed;
  }

  /** Tell the shim to exec `shell` locally. */
  runLocally(shell: string): void {
    this.finish(shimFrame(ShimFrame.Local, Buffer.from(shell)));
  }

  /** Output bytes; `written` runs once the socket has taken them. */
  write(stream: 1 | 2, bytes: Uint8Array, written: () => void): void {
    if (this.closed) return written();
    this.socket.write(shimFrame(stream === 1 ? ShimFrame.Stdout : ShimFrame.Stderr, bytes), () =>
      written(),
    );
  }

  /**
   * The job's end. With `expect` (a success whose targets another machine
   * wrote), the shim first waits until it sees them as the node did;
   * resolves with what it measured then, or undefined (no wait, or the
   * shim went away).
   */
  exit(
    code: number | null,
    signal: string | null,
    expect?: Expectation,
  ): Promise<FreshReport | undefined> {
    const signo = signal ? (osConstants.signals[signal as NodeJS.Signals] ?? 9) : 0;
    const exit = exitFrame(signal ? -1 : (code ?? 127), signo);
    if (!expect || expect.files.length === 0 || this.closed) {
      this.finish(exit);
      return Promise.resolve(undefined);
    }
    const report = new Promise<FreshReport | undefined>((resolve) => {
      const done = (r?: FreshReport): void => {
        this.off('fresh', done);
        this.off('close', done);
        resolve(r);
      };
      this.on('fresh', done);
      this.on('close', done);
    });
    const payload = expectPayload(expect.waitMs, expect.from, expect.files);
    this.finish(Buffer.concat([shimFrame(ShimFrame.Expect, payload), exit]));
    return report;
  }

  /** An error the user must see (on the recipe's stderr), then exit 127. */
  fail(message: string): void {
    if (this.closed) return;
    this.socket.write(shimFrame(ShimFrame.Stderr, Buffer.from(`mpmake: ${message}\n`)));
    void this.exit(127, null);
  }

  private finish(frame: Buffer): void {
    if (this.closed) return;
    this.ended = true;
    this.socket.end(frame);
  }

  /** @internal */
  closedByPeer(): void {
    this.ended = true;
    this.emit('close');
  }
}

/**
 * The unix socket every shim of the build connects to. One connection per
 * recipe line: a REQUEST, then output and an exit (or LOCAL) back, and
 * perhaps CANCEL or RESIZE frames from the shim in between; or, for a line the shim ran
 * here by itself, a WROTE alone (`onWrote`).
 */
export class ShimServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    onRequest: (req: ShimRequest, conn: ShimConnection) => void,
    onWrote: (w: LocalWrites) => void = () => {},
  ) {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      const reader = new ShimFrameReader();
      const conn = new ShimConnection(socket);
      let requested = false;
      socket.on('data', (chunk: Buffer) => {
        let frames;
        try {
          frames = reader.push(chunk);
        } catch (err) {
          trace(`bad frame from a shim: ${(err as Error).message}`);
          socket.destroy();
          return;
        }
        for (const f of frames) {
          if (f.type === ShimFrame.Request && !requested) {
            requested = true;
            let req: ShimRequest;
            try {
              req = decodeRequest(f.payload);
            } catch (err) {
              conn.fail(`bad request from the shim: ${(err as Error).message}`);
              return;
            }
            onRequest(req, conn);
          } else if (f.type === ShimFrame.Wrote && !requested) {
            requested = true;
            try {
              onWrote(decodeWrote(f.payload));
            } catch (err) {
              trace(`bad WROTE from a shim: ${(err as Error).message}`);
            }
          } else if (f.type === ShimFrame.Fresh && requested) {
            try {
              conn.emit('fresh', decodeFresh(f.payload));
            } catch (err) {
              trace(`bad FRESH from a shim: ${(err as Error).message}`);
            }
          } else if (f.type === ShimFrame.Resize && requested) {
            const size = decodeResize(f.payload);
            if (size) conn.emit('resize', size.cols, size.rows);
            else trace('bad RESIZE from a shim');
          } else if (f.type === ShimFrame.Cancel && f.payload.length >= 4) {
            const signo = f.payload.readUInt32BE(0);
            const name = Object.entries(osConstants.signals).find(([, n]) => n === signo)?.[0];
            conn.emit('cancel', name ?? 'SIGTERM');
          } else {
            trace(`unexpected shim frame type ${f.type}`);
            socket.destroy();
          }
        }
      });
      socket.on('error', () => {});
      socket.on('close', () => {
        this.sockets.delete(socket);
        conn.closedByPeer();
      });
    });
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(path, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  close(): void {
    this.server.close();
    for (const s of this.sockets) s.destroy();
  }
}
