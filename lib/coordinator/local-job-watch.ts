import { readFileSync } from 'node:fs';

/**
 * The ends of recipe lines run on the client. Placement hands such a line
 * back to its shim, which execs the shell as the same process (the TS
 * fallback shim runs it as a child and lives until it ends), so the shim's
 * pid is the job's: its end is when that process has exited (gone, or a
 * zombie waiting for make). Seen through /proc every `intervalMs`; a pid
 * taken by another process meanwhile is told apart by its start time.
 * Without /proc, a job's end is taken as the moment it was handed back.
 */
export class LocalJobWatch {
  private readonly watched = new Map<
    number,
    { since: string; done: (endedAtMs: number) => void }
  >();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly intervalMs = 20,
    private readonly now: () => number = Date.now,
  ) {}

  /** Calls `done` with the time process `pid` is seen to have ended. */
  watch(pid: number, done: (endedAtMs: number) => void): void {
    const since = startTimeOf(pid);
    if (since === undefined || this.watched.has(pid)) {
      done(this.now());
      return;
    }
    this.watched.set(pid, { since, done });
    if (!this.timer) {
      this.timer = setInterval(() => this.poll(), this.intervalMs);
      this.timer.unref();
    }
  }

  /** Jobs still watched. */
  get size(): number {
    return this.watched.size;
  }

  /** Looks now, not at the next tick: ends the watches of processes gone since. */
  refresh(): void {
    this.poll();
  }

  /** Ends every watch now (make has exited, so have its jobs). */
  flush(): void {
    this.poll(true);
  }

  private poll(all = false): void {
    const t = this.now();
    for (const [pid, w] of this.watched) {
      if (!all && startTimeOf(pid) === w.since) continue;
      this.watched.delete(pid);
      w.done(t);
    }
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

/** A live (not zombie) process's start time (clock ticks since boot, as text); undefined otherwise. */
function startTimeOf(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name, which may hold spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}
