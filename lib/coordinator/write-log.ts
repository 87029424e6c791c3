/**
 * Which files were written in this build, and where: by a node (with what
 * it saw of them once the job had exited) or by the client (a line that
 * ran here). A job placed on a node gets the files among its
 * prerequisites that another machine wrote, to revalidate before it starts.
 */
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FileSeen } from '../protocol/messages.js';

/** The client, as a writer. */
export const CLIENT = 'client';

/**
 * A prerequisite whose mtime is this close before the build's start counts
 * as written now (by the client: an editor's save, a `touch` just before).
 */
const RECENT_MS = 3000;
const NS = 1_000_000_000n;

/** The client's own view of a file (fresh for what the client wrote itself). */
function clientSees(path: string): FileSeen | undefined {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  if (!st) return undefined;
  return {
    path,
    size: Number(st.size),
    mtimeS: Number(st.mtimeNs / NS),
    mtimeNs: Number(st.mtimeNs % NS),
    ino: st.ino.toString(),
  };
}

export class WriteLog {
  private readonly writes = new Map<string, { by: string; seen: FileSeen | undefined }>();

  constructor(private readonly buildStartMs: number) {}

  /** What a node (by address) saw of the files its job wrote. */
  wroteOnNode(address: string, seen: readonly FileSeen[]): void {
    for (const f of seen) this.writes.set(f.path, { by: address, seen: f });
  }

  /** A line that ran on the client, whose target is `path`. */
  wroteOnClient(path: string): void {
    this.writes.set(path, { by: CLIENT, seen: undefined });
  }

  /**
   * The prerequisites (`$^ $|`, relative to `cwd`) of a job to run on the
   * node at `address` that another machine wrote in this build, each as
   * its writer saw it.
   */
  inputsFor(address: string, cwd: string, prereqs: readonly string[]): FileSeen[] {
    const out: FileSeen[] = [];
    const seenPaths = new Set<string>();
    for (const p of prereqs) {
      const path = resolve(cwd, p);
      if (seenPaths.has(path)) continue;
      seenPaths.add(path);
      const w = this.writes.get(path);
      if (w && w.by === address) continue;
      if (w && w.seen) {
        out.push({ ...w.seen, path });
        continue;
      }
      // Written by the client (a line that ran here, a local-list line, a
      // touch just before the build): the client's own view is fresh.
      const mine = clientSees(path);
      if (mine && (w || Number(mine.mtimeS) * 1000 >= this.buildStartMs - RECENT_MS)) {
        out.push(mine);
      }
    }
    return out;
  }
}

/** The words of `$^ $|` as make exported them (file names have no blanks there). */
export function prerequisites(text: string | undefined): string[] {
  return text === undefined ? [] : text.split(/\s+/).filter((w) => w !== '');
}
