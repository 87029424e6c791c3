/**
 * The progress line's total when this tree has no history: `make -n` of
 * the same goals, if it answers within a bound, counts the recipe lines
 * mpmake will see. make runs lines marked `+` and `$(MAKE)` lines even
 * under -n (its own rule), as a `make -n` typed by hand would.
 */
import { spawn } from 'node:child_process';
import { killGroup } from '../agent/job-process.js';

/** How long a dry run may take before it is not cheap (killed, no total). */
export const DRY_RUN_BOUND_MS = 1000;

/** Lines held back so a huge dry run costs bounded memory: beyond it, no total. */
const MAX_BYTES = 16 * 1024 * 1024;

const firstWord = (line: string): string => {
  const word = line.trim().split(/\s+/)[0] ?? '';
  return word.slice(word.lastIndexOf('/') + 1);
};

/**
 * The recipe lines in `make -n`'s output that reach the coordinator: one
 * per command line (a backslash-continued line is one), without make's own
 * messages (`make: …`, `make[1]: Entering …`), without lines on the local
 * list (run by the shim, not counted) and without sub-make lines.
 */
export function countDryRunLines(
  stdout: string,
  makeNames: readonly string[],
  local: readonly string[],
): number {
  const joined = stdout.replace(/\\\n/g, ' ');
  const own = new RegExp(
    `^(${makeNames.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(\\[\\d+\\])?: `,
  );
  let n = 0;
  for (const line of joined.split('\n')) {
    if (line.trim() === '' || own.test(line)) continue;
    const word = firstWord(line);
    if (local.includes(word) || makeNames.includes(word)) continue;
    n++;
  }
  return n;
}

export type DryRunTotal = { total: number } | { reason: string };

/** Runs `make -n ARGS` in `cwd`, bounded by `boundMs`; its line count, or why there is none. */
export function dryRunTotal(opts: {
  make: string;
  args: readonly string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  local: readonly string[];
  boundMs?: number;
}): Promise<DryRunTotal> {
  const bound = opts.boundMs ?? DRY_RUN_BOUND_MS;
  const name = opts.make.slice(opts.make.lastIndexOf('/') + 1);
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: DryRunTotal): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const child = spawn(opts.make, ['-n', ...opts.args], {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'ignore'],
      // Its own group: a timeout ends its sub-makes too.
      detached: true,
    });
    const chunks: Buffer[] = [];
    let bytes = 0;
    const timer = setTimeout(() => {
      killGroup(child.pid, 'SIGKILL');
      done({ reason: `make -n took over ${bound / 1000} s` });
    }, bound);
    child.on('error', (err) => done({ reason: `make -n failed: ${err.message}` }));
    child.stdout.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_BYTES) {
        killGroup(child.pid, 'SIGKILL');
        done({ reason: 'make -n printed too much' });
      } else chunks.push(chunk);
    });
    child.on('close', (code) => {
      if (code !== 0) return done({ reason: `make -n exited ${code ?? 'on a signal'}` });
      const total = countDryRunLines(
        Buffer.concat(chunks).toString('latin1'),
        [name, 'make', 'gmake'],
        opts.local,
      );
      done(total > 0 ? { total } : { reason: 'make -n listed no lines' });
    });
  });
}
