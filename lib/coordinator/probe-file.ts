import { randomBytes } from 'node:crypto';
import { readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tracer } from '../trace.js';

const trace = tracer('coordinator');
const PREFIX = '.mpmake-probe-';

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A probe file as written: where, what, and between which times of our clock. */
export interface ProbeWritten {
  path: string;
  content: string;
  before: number;
  after: number;
}

/**
 * The start check's probe file (`.mpmake-probe-PID-HEX` in the build
 * directory, which each node must read back): it exists only while a check
 * is running, so an mpmake killed at any other moment leaves nothing in the
 * user's tree; one killed during a check leaves a file that the next mpmake
 * in that directory removes (its pid is dead).
 */
export class ProbeFile {
  private users = 0;
  private current: ProbeWritten | undefined;
  private broken = false;

  constructor(private readonly dir: string | undefined) {
    if (dir) removeStaleProbes(dir);
  }

  /** The probe, written if it is not there; undefined when it cannot be (the check is skipped). */
  acquire(): ProbeWritten | undefined {
    if (!this.dir || this.broken) return undefined;
    if (!this.current) {
      const content = randomBytes(16).toString('hex');
      const path = join(this.dir, `${PREFIX}${process.pid}-${content.slice(0, 8)}`);
      try {
        const before = Date.now();
        writeFileSync(path, content, { mode: 0o644, flag: 'wx' });
        this.current = { path, content, before, after: Date.now() };
      } catch (err) {
        this.broken = true;
        trace(
          `cannot write probe file in ${this.dir}: ${(err as Error).message}; skipping the check`,
        );
        return undefined;
      }
    }
    this.users++;
    return this.current;
  }

  /** One check is over: the file goes when no other check needs it. */
  release(): void {
    if (this.users === 0 || --this.users > 0 || !this.current) return;
    unlinkQuietly(this.current.path);
    this.current = undefined;
  }

  close(): void {
    this.users = 0;
    if (this.current) unlinkQuietly(this.current.path);
    this.current = undefined;
  }
}

/** Removes probe files of ours whose mpmake is gone (killed during a check). */
export function removeStaleProbes(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    const m = /^\.mpmake-probe-(\d+)-[0-9a-f]{8}$/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    const path = join(dir, name);
    try {
      if (uid !== undefined && statSync(path).uid !== uid) continue;
    } catch {
      continue;
    }
    trace(`removing ${path}, left by an mpmake that was killed`);
    unlinkQuietly(path);
  }
}
