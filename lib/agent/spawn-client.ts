import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WireText } from '../protocol/messages.js';
import { sharedLeaseBoard } from './lease-board.js';
import { packageRoot } from './package-root.js';

const NO_ID = 0xffffffff;

export interface SpawnRequest {
  argv: WireText[];
  env: Record<string, WireText>;
  cwd: string;
  umask: number;
  mergeOutput: boolean;
  uid?: number;
  gid?: number;
  groups?: number[];
  /** The job's lease record (lease-board.ts); the job runs only while it holds. */
  leaseSlot?: number;
  /** Absolute path of the file the job makes: deleted if the job is killed half-way. */
  target?: string;
  /**
   * An EXPECT payload (shim-protocol.ts): the job's inputs as their writer
   * saw them. The job's process waits until it sees them so, reports the
   * FRESH payload through the report FIFO, and only then execs the job (or,
   * with one still stale, exits 127 unrun).
   */
  inputs?: Buffer;
}

/** What the spawner says about one job. */
export interface SpawnHandlers {
  /** The job's pid (its process group), or a negative errno. */
  started(pid: number): void;
  /** `cpuMs`: the job's user + system CPU time (its waited-for children included). */
  exited(code: number | null, signal: number | null, cpuMs: number | undefined): void;
  /** The spawner died: the job is gone. */
  dead(): void;
}

const bytes = (t: WireText): Buffer => (typeof t === 'string' ? Buffer.from(t) : Buffer.from(t));
const nul = Buffer.alloc(1);

/**
 * The agent's end of build/mpmake-spawnd (lib/agent/spawn-server.c): one
 * small process per agent that forks jobs for it, because forking the agent
 * itself (child_process.spawn) costs milliseconds per job. A job's output
 * comes through two FIFOs in a private directory (or one when merged).
 */
export class SpawnClient {
  readonly dir: string;
  private readonly child: ChildProcess;
  private buf: Buffer = Buffer.alloc(0);
  private readonly handlers = new Map<number, SpawnHandlers>();
  private nextId = 1;
  private dead: Error | undefined;
  private closing = false;

  private constructor(binary: string) {
    this.dir = mkdtempSync(join(tmpdir(), 'mpm-agent-'));
    this.child = spawn(binary, [sharedLeaseBoard().path], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.child.stdout!.on('data', (chunk: Buffer) => this.onData(chunk));
    this.child.on('exit', (code, signal) => {
      this.dead = new Error(`the job spawner exited (${signal ?? code})`);
      // Never expected: it takes every job it runs with it (a new one starts for the next job).
      if (!this.closing && this.handlers.size > 0) {
        process.stderr.write(
          `mpm agent: ${this.dead.message}; its ${this.handlers.size} jobs were killed\n`,
        );
      }
      for (const h of this.handlers.values()) h.dead();
      this.handlers.clear();
    });
    this.child.stdin!.on('error', () => {});
  }

  /** build/mpmake-spawnd when it was built; otherwise undefined (jobs use child_process). */
  static start(): SpawnClient | undefined {
    if (process.env['MPMAKE_NO_SPAWND'] === '1') return undefined;
    const binary = join(packageRoot(), 'build', 'mpmake-spawnd');
    return existsSync(binary) ? new SpawnClient(binary) : undefined;
  }

  get alive(): boolean {
    return this.dead === undefined;
  }

  /**
   * Asks for a job; returns its id and its FIFO paths (stderr's undefined
   * when merged; the report's, only with `inputs`).
   */
  spawn(
    req: SpawnRequest,
    handlers: SpawnHandlers,
  ): { id: number; out: string; err: string | undefined; report: string | undefined } {
    const id = this.nextId++;
    this.handlers.set(id, handlers);
    if (this.dead) setImmediate(() => handlers.dead());
    const out = join(this.dir, `${id}.out`);
    const err = req.mergeOutput ? undefined : join(this.dir, `${id}.err`);
    const report = req.inputs ? join(this.dir, `${id}.fresh`) : undefined;
    const groups = req.groups ?? [];
    const head = Buffer.alloc(1 + 28 + 4 * groups.length + 8);
    let o = 0;
    head.writeUInt8(1, o++);
    head.writeUInt32BE(id, o);
    head.writeUInt32BE(req.umask & 0o777, (o += 4));
    head.writeUInt32BE((req.mergeOutput ? 1 : 0) | (req.inputs ? 2 : 0), (o += 4));
    head.writeUInt32BE(req.leaseSlot ?? NO_ID, (o += 4));
    head.writeUInt32BE(req.uid ?? NO_ID, (o += 4));
    head.writeUInt32BE(req.gid ?? NO_ID, (o += 4));
    head.writeUInt32BE(groups.length, (o += 4));
    o += 4;
    for (const g of groups) {
      head.writeUInt32BE(g, o);
      o += 4;
    }
    const env = Object.entries(req.env).map(([k, v]) =>
      Buffer.concat([Buffer.from(`${k}=`), bytes(v)]),
    );
    head.writeUInt32BE(req.argv.length, o);
    head.writeUInt32BE(env.length, o + 4);
    const parts: Buffer[] = [head];
    for (const s of [
      Buffer.from(out),
      Buffer.from(err ?? ''),
      Buffer.from(req.cwd),
      Buffer.from(req.target ?? ''),
      ...req.argv.map(bytes),
      ...env,
    ]) {
      parts.push(s, nul);
    }
    if (report !== undefined && req.inputs) parts.push(Buffer.from(report), nul, req.inputs);
    const body = Buffer.concat(parts);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    this.child.stdin!.write(Buffer.concat([len, body]));
    return { id, out, err, report };
  }

  /** Tells the spawner we have job `id`'s read ends: it drops its own. */
  opened(id: number): void {
    const f = Buffer.alloc(9);
    f.writeUInt32BE(5, 0);
    f.writeUInt8(2, 4);
    f.writeUInt32BE(id, 5);
    if (!this.dead) this.child.stdin!.write(f);
  }

  /**
   * Signals job `id`'s process group, through the spawner: it does so only
   * while the job's leader is unreaped, so the group's id cannot have been
   * reused. `sweep`: when the leader ends, what is left of its group is killed.
   */
  signal(id: number, signo: number, sweep: boolean): void {
    const f = Buffer.alloc(17);
    f.writeUInt32BE(13, 0);
    f.writeUInt8(3, 4);
    f.writeUInt32BE(id, 5);
    f.writeUInt32BE(signo, 9);
    f.writeUInt32BE(sweep ? 1 : 0, 13);
    if (!this.dead) this.child.stdin!.write(f);
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32BE(0);
      if (this.buf.length < 4 + len) break;
      const f = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      const id = f.readUInt32BE(1);
      const h = this.handlers.get(id);
      if (!h) continue;
      if (f[0] === 1) h.started(f.readInt32BE(5));
      else if (f[0] === 2) {
        this.handlers.delete(id);
        const code = f.readInt32BE(5);
        const signal = f.readInt32BE(9);
        const cpuMs =
          f.length >= 21 ? (f.readUInt32BE(13) * 2 ** 32 + f.readUInt32BE(17)) / 1000 : undefined;
        h.exited(code >= 0 ? code : null, signal > 0 ? signal : null, cpuMs);
      }
    }
  }

  /** Stops the spawner (it kills whatever jobs it still has) and removes its directory. */
  close(): void {
    this.closing = true;
    this.child.stdin!.end();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let shared: SpawnClient | null | undefined;

/**
 * This process's spawner, started on first use (and again if it died);
 * undefined where build/mpmake-spawnd was not built. It ends with us: its
 * stdin closes, and the kernel tells it when we die.
 */
export function sharedSpawner(): SpawnClient | undefined {
  if (shared === undefined || (shared !== null && !shared.alive))
    shared = SpawnClient.start() ?? null;
  return shared ?? undefined;
}

/** Stops this process's spawner, if one was started (mpmake's embedded agent is done). */
export function closeSharedSpawner(): void {
  if (shared) shared.close();
  shared = undefined;
}
