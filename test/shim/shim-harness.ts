/**
 * Helpers for the shim tests (not a test file itself): building the native
 * shim, the shim variants to run, a fake coordinator speaking
 * shim-protocol.ts over a real unix socket, and running a process to its end.
 */
import { spawn, spawnSync, type SpawnOptions, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ShimFrame,
  ShimFrameReader,
  decodeFresh,
  decodeRequest,
  decodeWrote,
  type LocalWrites,
  exitFrame,
  shimFrame,
  type FreshReport,
  type ShimRequest,
} from '../../lib/shim/shim-protocol.js';
import { fallbackShimPath, launcherScript, nativeShimPath } from '../../lib/shim/install-shim.js';
import { withoutTapHooks } from '../helpers/run.js';

export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Builds build/mpmake-shim if it is missing; null when no C compiler works. */
export function ensureNativeShim(): string | null {
  const bin = nativeShimPath();
  if (fs.existsSync(bin)) return bin;
  const src = path.join(PACKAGE_ROOT, 'lib/shim/shim.c');
  fs.mkdirSync(path.dirname(bin), { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  const cc = process.env.CC || 'cc';
  const r = spawnSync(
    cc,
    ['-O2', '-Wall', '-Wextra', '-std=c99', '-D_GNU_SOURCE', '-o', tmp, src],
    { stdio: 'ignore' },
  );
  if (r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    return null;
  }
  fs.renameSync(tmp, bin); // atomic: test files may build at the same time
  return bin;
}

/** A short private directory (unix socket paths are limited to 107 bytes). */
export function shortTempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'mpshim-'));
}

export interface ShimVariant {
  name: string;
  /** The program make would run as SHELL (a path named `sh` for launchers). */
  file: string;
  /** Arguments placed before the shell arguments (the direct fallback). */
  prefix: string[];
}

/**
 * The shims to run: the native binary (when it builds), the fallback through
 * its `sh` launcher, and the fallback started directly with node.
 */
export function shimVariants(dir: string): ShimVariant[] {
  const out: ShimVariant[] = [];
  const native = ensureNativeShim();
  if (native) out.push({ name: 'native', file: native, prefix: [] });
  const ldir = path.join(dir, 'launcher');
  fs.mkdirSync(ldir, { recursive: true, mode: 0o700 });
  const launcher = path.join(ldir, 'sh');
  fs.writeFileSync(launcher, launcherScript(process.execPath, fallbackShimPath()), {
    mode: 0o755,
  });
  fs.chmodSync(launcher, 0o755);
  out.push({ name: 'fallback-launcher', file: launcher, prefix: [] });
  out.push({ name: 'fallback-direct', file: process.execPath, prefix: [fallbackShimPath()] });
  return out;
}

/** This process's /proc comm: passed as MPMAKE_MAKE_NAME, the test acts as make. */
export function myComm(): string {
  return fs.readFileSync('/proc/self/comm', 'utf8').trim();
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
}

export interface Running {
  child: ReturnType<typeof spawn>;
  done: Promise<RunResult>;
}

/** Spawns a process, collecting piped stdout/stderr. */
export function start(
  file: string,
  args: readonly string[],
  opts: SpawnOptions & { stdio?: StdioOptions } = {},
): Running {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }),
    );
  });
  return { child, done };
}

export function run(
  file: string,
  args: readonly string[],
  opts: SpawnOptions & { stdio?: StdioOptions } = {},
): Promise<RunResult> {
  return start(file, args, opts).done;
}

/** One shim connection as the fake coordinator sees it. */
export class FakeConn {
  readonly cancels: number[] = [];
  /** FRESH reports: the shim's wait for the files of an EXPECT. */
  readonly fresh: FreshReport[] = [];
  private cancelWaiters: Array<(sig: number) => void> = [];
  closed = false;
  constructor(
    readonly request: ShimRequest,
    readonly socket: net.Socket,
  ) {}

  send(...frames: Buffer[]): void {
    for (const f of frames) this.socket.write(f);
  }

  stdout(data: string | Buffer): void {
    this.send(shimFrame(ShimFrame.Stdout, Buffer.from(data)));
  }

  stderr(data: string | Buffer): void {
    this.send(shimFrame(ShimFrame.Stderr, Buffer.from(data)));
  }

  exit(code: number, signal = 0): void {
    this.send(exitFrame(code, signal));
  }

  local(shell: string): void {
    this.send(shimFrame(ShimFrame.Local, Buffer.from(shell)));
  }

  /** Resolves with the signal of the first CANCEL. */
  nextCancel(): Promise<number> {
    if (this.cancels.length > 0) return Promise.resolve(this.cancels[0]!);
    return new Promise((resolve) => this.cancelWaiters.push(resolve));
  }

  onCancel(sig: number): void {
    this.cancels.push(sig);
    for (const w of this.cancelWaiters.splice(0)) w(sig);
  }

  /** The recipe line: make's last argument. */
  get line(): string {
    const last = this.request.argv[this.request.argv.length - 1] ?? '';
    return typeof last === 'string' ? last : Buffer.from(last).toString('latin1');
  }
}

export type Handler = (conn: FakeConn) => void | Promise<void>;

/** A real unix-socket server speaking the shim protocol, answering by `handler`. */
export class FakeCoordinator {
  readonly conns: FakeConn[] = [];
  readonly errors: Error[] = [];
  /** WROTE frames: the targets of lines the shim ran by itself. */
  readonly wrote: LocalWrites[] = [];
  private server: net.Server;
  private sockets = new Set<net.Socket>();
  private requestWaiters: Array<(c: FakeConn) => void> = [];

  private constructor(
    readonly path: string,
    private handler: Handler,
  ) {
    this.server = net.createServer((socket) => this.accept(socket));
  }

  static async start(sockPath: string, handler: Handler): Promise<FakeCoordinator> {
    const fc = new FakeCoordinator(sockPath, handler);
    await new Promise<void>((resolve, reject) => {
      fc.server.once('error', reject);
      fc.server.listen(sockPath, () => resolve());
    });
    return fc;
  }

  get requests(): ShimRequest[] {
    return this.conns.map((c) => c.request);
  }

  get lines(): string[] {
    return this.conns.map((c) => c.line);
  }

  /** Resolves at the next REQUEST (or the first one, if one came already). */
  firstRequest(): Promise<FakeConn> {
    if (this.conns.length > 0) return Promise.resolve(this.conns[0]!);
    return new Promise((resolve) => this.requestWaiters.push(resolve));
  }

  setHandler(handler: Handler): void {
    this.handler = handler;
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => {});
    const reader = new ShimFrameReader();
    let conn: FakeConn | null = null;
    socket.on('data', (chunk: Buffer) => {
      let frames: Array<{ type: number; payload: Buffer }>;
      try {
        frames = reader.push(chunk);
      } catch (e) {
        this.errors.push(e as Error);
        socket.destroy();
        return;
      }
      for (const f of frames) {
        if (f.type === ShimFrame.Request && conn === null) {
          conn = new FakeConn(decodeRequest(f.payload), socket);
          const c = conn;
          socket.on('close', () => (c.closed = true));
          this.conns.push(c);
          for (const w of this.requestWaiters.splice(0)) w(c);
          Promise.resolve(this.handler(c)).catch((e: Error) => this.errors.push(e));
        } else if (f.type === ShimFrame.Wrote && conn === null) {
          this.wrote.push(decodeWrote(f.payload));
        } else if (f.type === ShimFrame.Fresh && conn !== null) {
          conn.fresh.push(decodeFresh(f.payload));
        } else if (f.type === ShimFrame.Cancel && conn !== null) {
          conn.onCancel(f.payload.readUInt32BE(0));
        } else {
          this.errors.push(new Error(`unexpected frame type ${f.type}`));
        }
      }
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Environment for a shim that talks to `sockPath`, with the test acting as make. */
export function shimEnv(sockPath: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = withoutTapHooks();
  for (const k of Object.keys(env)) {
    if (k.startsWith('MPMAKE_') || k === 'MAKEFLAGS' || k === 'MFLAGS' || k === 'MAKELEVEL') {
      delete env[k];
    }
  }
  return { ...env, MPMAKE_SOCK: sockPath, MPMAKE_MAKE_NAME: myComm(), ...extra };
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
