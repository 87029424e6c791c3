import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { CommandTimesData } from '../placement/command-times.js';
import { tracer } from '../trace.js';

const trace = tracer('coordinator');

/** What mpmake keeps of the last build of a tree and goals. */
export interface BuildHistory {
  version: 2;
  /** Recipe lines the coordinator saw (the progress line's "done" at the end). */
  jobs: number;
  wallMs: number;
  /** Whether that build succeeded (a failed one may have stopped early). */
  ok: boolean;
  times: CommandTimesData;
}

/** `$XDG_CACHE_HOME/mpmake`, else `~/.cache/mpmake`. */
export function cacheDir(env: NodeJS.ProcessEnv): string {
  return join(env['XDG_CACHE_HOME'] || join(env['HOME'] || homedir(), '.cache'), 'mpmake');
}

/**
 * The history file of one build: a tree (the directory make starts in) and
 * the arguments it was given (goals, -f, variables), hashed.
 */
export function historyFile(env: NodeJS.ProcessEnv, cwd: string, args: readonly string[]): string {
  const id = createHash('sha256')
    .update(JSON.stringify([cwd, args]))
    .digest('hex')
    .slice(0, 24);
  return join(cacheDir(env), 'history', `${id}.json`);
}

/** The last build's history, or undefined (none, unreadable, another version). */
export function readHistory(file: string): BuildHistory | undefined {
  try {
    const data = JSON.parse(readFileSync(file, 'utf8')) as Partial<BuildHistory>;
    if (data.version !== 2 || typeof data.jobs !== 'number' || typeof data.wallMs !== 'number')
      return undefined;
    if (typeof data.times !== 'object' || data.times === null) return undefined;
    return data as BuildHistory;
  } catch {
    return undefined;
  }
}

/** Keeps this build's history for the next one; a cache, so failures only trace. */
export function writeHistory(file: string, history: BuildHistory): void {
  try {
    mkdirSync(join(file, '..'), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(history), { mode: 0o600 });
    renameSync(tmp, file);
  } catch (err) {
    trace(`cannot keep the build history in ${file}: ${(err as Error).message}`);
  }
}
