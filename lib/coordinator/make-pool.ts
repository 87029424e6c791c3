import { closeSync, constants, openSync, statSync } from 'node:fs';
import { JobserverPool } from '../jobserver/pool.js';
import { findParentPool, type ParentPool } from '../jobserver/parent-pool.js';
import {
  composeMakeflags,
  jobserverAuthOf,
  jobsInMakeflags,
  rewriteJobserverAuth,
} from './makeflags.js';
import type { JobsRequest } from './make-args.js';

export type JobserverStyle = 'pipe' | 'fifo';

/** How the make that mpmake starts gets its jobserver. */
export interface MakePool {
  /**
   * 'own': mpmake's pool; 'parent': the one we were given, handed on as
   * make would get it; 'make': make's own business (a sub-make under an
   * outer build, or a -j make must refuse); 'none': serial.
   */
  kind: 'own' | 'parent' | 'make' | 'none';
  own: JobserverPool | undefined;
  parent: ParentPool | undefined;
  /** What make gets as its fds 3, 4, …: an fd of ours, or nothing (undefined). */
  fds: (number | undefined)[];
  /** Ours, to close once make has them. */
  handedFds: number[];
  /** make's MAKEFLAGS; undefined: the user's, untouched. */
  makeflags: string | undefined;
  /** Put back on make's argv (its own -j, when make is to decide). */
  makeArgs: string[];
  /** The shim must know recursive lines by their text, not by fds. */
  textual: boolean;
  /** How many slots were asked for: N of -jN, or undefined for the cluster's. */
  cap: number | undefined;
  /** One line to print, as make would print it. */
  warning: string | undefined;
  /**
   * make makes its pool itself (-j on its command line) and the interposer
   * gives it ours in its place (lib/shim/preload.c): the interposer needs
   * `own.path` as __MPMAKE_POOL.
   */
  adopted: boolean;
}

/** How make names itself in its messages: `make`, or `make[2]` below the top. */
export function makePrefix(name: string, env: NodeJS.ProcessEnv): string {
  const level = Number(env['MAKELEVEL'] ?? '0');
  return Number.isInteger(level) && level > 0 ? `${name}[${level}]` : name;
}

const jobsWord = (jobs: JobsRequest): string[] =>
  jobs === undefined ? [] : [jobs === 'all' ? '-j' : `-j${jobs}`];

/** The inherited `R,W` pipe at the numbers make would have it at (fds 3…max). */
function sameNumbers(pool: ParentPool | undefined): (number | undefined)[] {
  if (pool?.kind !== 'pipe') return [];
  const fds: (number | undefined)[] = [];
  for (let fd = 3; fd <= Math.max(pool.readFd, pool.writeFd); fd++)
    fds.push(fd === pool.readFd || fd === pool.writeFd ? fd : undefined);
  return fds;
}

/**
 * make 4.4's temporary directory: MAKE_TMPDIR, else TMPDIR, else /tmp (a
 * value that is no directory is passed over; make itself says so when it
 * starts, misc.c get_tmpdir).
 */
export function makeTmpdir(env: NodeJS.ProcessEnv): string {
  for (const name of ['MAKE_TMPDIR', 'TMPDIR']) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    try {
      if (statSync(v).isDirectory()) return v;
    } catch {
      // make complains about it, and so do we not
    }
  }
  return '/tmp';
}

const STRERROR: Record<string, string> = {
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
  ENOTDIR: 'Not a directory',
  EEXIST: 'File exists',
  EROFS: 'Read-only file system',
  ENOSPC: 'No space left on device',
};

function strerror(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return STRERROR[code] ?? (err as Error).message;
}

/** Why mkfifo(PATH) failed, in strerror's words (it ran as a program). */
function mkfifoFailure(dir: string, path: string): string {
  try {
    statSync(dir);
  } catch (err) {
    return strerror(err);
  }
  try {
    statSync(path);
    return STRERROR['EEXIST']!;
  } catch {
    return STRERROR['EACCES']!;
  }
}

/**
 * Decides the jobserver of the make mpmake starts, so that make, its
 * makefiles and its recipes see what they would see without mpmake:
 * - a sub-make under an outer mpmake build (`nested`): make's own affair;
 *   MAKEFLAGS, -j and the parent's fds (at their numbers) go to make as
 *   they came, and make warns, joins or starts a pool as it would;
 * - run under a parent make whose pool reaches us, without -j: the same,
 *   handed on untouched; an advertised pool that does not reach us: make
 *   gets it as it came and prints its own warning, then builds serially;
 * - otherwise -j/-jN (on the command line, or in MAKEFLAGS from the
 *   environment, as make reads it): our own pool, sized to the cluster (and
 *   at most N), shown as make shows its own: `R,W` (two fds, 3 and 4) in
 *   the pipe style, `fifo:$TMPDIR/GMfifoPID` in the fifo style (make 4.4's
 *   default; where mkfifo fails there, make's message and the pipe style).
 *   Under a parent's pool, make's "-jN forced in submake" warning;
 * - a `--jobserver-style` make does not know: make's own error (it gets
 *   its -j back, so it starts a pool and refuses the style);
 * - no -j: no pool at all (in jobserver mode, even with one slot, make
 *   visits targets in another order than serial make does).
 */
export function setupMakePool(opts: {
  env: NodeJS.ProcessEnv;
  jobs: JobsRequest;
  runDir: string;
  clusterSlots: number;
  style: JobserverStyle;
  /** A `--jobserver-style=` given to make: make 4.4 checks it when it starts a pool. */
  makeStyle?: string | undefined;
  /** Under an outer mpmake build. */
  nested?: boolean;
  /** make reads `fifo:PATH` (4.4 and later); an older one gets a fifo parent as fds. */
  makeReadsFifo?: boolean;
  /** make's name in its messages (the command typed). */
  makeName: string;
  /** The interposer is there to give make our pool as its own (see `adopted`). */
  adopt?: boolean;
  /** With `adopt`: a style for make's own pool (--mp-jobserver-style; make 4.4 and later). */
  adoptStyle?: JobserverStyle | undefined;
}): MakePool {
  const userFlags = opts.env['MAKEFLAGS'];
  const found = findParentPool(jobserverAuthOf(userFlags));
  const base = {
    own: undefined,
    parent: undefined,
    handedFds: [],
    makeArgs: [],
    cap: undefined,
    warning: undefined,
    adopted: false,
  };
  // make's own affair: MAKEFLAGS, its -j and the parent's fds as they came.
  const asItCame = (kind: 'parent' | 'make' | 'none', textual: boolean): MakePool => {
    if (found.found && found.pool?.kind === 'fifo') {
      closeQuietly(found.pool.fd);
      // make 4.3 cannot read `fifo:PATH`: it gets the FIFO's two ends as 3,4.
      if (!opts.makeReadsFifo) {
        const ends = [
          openSync(found.pool.path, constants.O_RDONLY | constants.O_NONBLOCK),
          openSync(found.pool.path, constants.O_WRONLY),
        ];
        return {
          ...base,
          kind,
          fds: ends,
          handedFds: ends,
          makeflags: rewriteJobserverAuth(userFlags ?? '', '3,4'),
          makeArgs: jobsWord(opts.jobs),
          textual: false,
        };
      }
    }
    return {
      ...base,
      kind,
      parent: found.found && found.pool?.kind === 'pipe' ? found.pool : undefined,
      fds: found.found ? sameNumbers(found.pool) : [],
      makeflags: undefined,
      makeArgs: jobsWord(opts.jobs),
      textual,
    };
  };
  if (opts.nested) return asItCame('make', false);
  const fromEnv = found.found ? undefined : jobsInMakeflags(userFlags);
  const jobs = opts.jobs ?? fromEnv;
  if (opts.jobs === undefined && found.found) {
    if (found.pool !== undefined) return asItCame('parent', found.pool.kind === 'fifo');
    return asItCame('none', true);
  }
  if (
    opts.adopt &&
    jobs !== undefined &&
    jobs !== 1 &&
    !(opts.jobs === undefined && jobs === 'all')
  )
    return adoptedPool(opts, jobs, found, base);
  const unknownStyle =
    opts.makeStyle !== undefined && opts.makeStyle !== 'pipe' && opts.makeStyle !== 'fifo';
  if (jobs !== undefined && jobs !== 1 && unknownStyle) {
    return { ...asItCame('make', true), makeArgs: jobsWord(jobs) };
  }
  const cap = typeof jobs === 'number' ? jobs : undefined;
  let warning: string | undefined;
  if (opts.jobs !== undefined && found.found && found.pool) {
    if (found.pool.kind === 'fifo') closeQuietly(found.pool.fd);
    warning =
      `${makePrefix(opts.makeName, opts.env)}: warning: -j${cap ?? 0} forced in submake: ` +
      'resetting jobserver mode.';
  }
  if (jobs === undefined || jobs === 1) {
    return {
      ...base,
      kind: 'none',
      fds: [],
      makeflags: composeMakeflags(userFlags, 1, undefined),
      textual: true,
      cap,
      warning,
    };
  }
  const slots = Math.max(1, Math.min(cap ?? Infinity, opts.clusterSlots));
  const shown = cap ?? Math.max(opts.clusterSlots, 2);
  const style =
    opts.makeStyle === 'pipe' || opts.makeStyle === 'fifo' ? opts.makeStyle : opts.style;
  if (style === 'fifo') {
    const dir = makeTmpdir(opts.env);
    const name = `GMfifo${process.pid}`;
    const said = warning ? [warning] : [];
    try {
      const own = new JobserverPool(dir, slots, name);
      return {
        ...base,
        kind: 'own',
        own,
        fds: [],
        makeflags: composeMakeflags(userFlags, shown, `fifo:${own.path}`),
        textual: true,
        cap,
        warning: said.join('\n') || undefined,
      };
    } catch {
      const path = `${dir}/${name}`;
      said.push(
        `${makePrefix(opts.makeName, opts.env)}: jobserver mkfifo: ${path}: ${mkfifoFailure(dir, path)}`,
      );
      warning = said.join('\n');
    }
  }
  const own = new JobserverPool(opts.runDir, slots);
  const ends = own.openEnds();
  return {
    ...base,
    kind: 'own',
    own,
    fds: ends,
    handedFds: ends,
    makeflags: composeMakeflags(userFlags, shown, '3,4'),
    textual: false,
    cap,
    warning,
  };
}

/**
 * make is the top of its own jobserver group, as without mpmake: -jN goes
 * on its command line (so it wins over a makefile's `MAKEFLAGS += -jM`, as
 * make lets it), MAKEFLAGS and a parent's fds reach it as they came (make
 * warns "-jN forced in submake" itself), and make makes its pool in its own
 * style and names it in its MAKEFLAGS; the interposer makes that pool ours
 * (sized to the cluster, at most N). `-j` alone: -j<the cluster's slots>,
 * as a pool needs a size. -jN from MAKEFLAGS in the environment: make reads
 * it there (a makefile's -jM then wins, as in make, but the pool stays N).
 * The pool's style is make's (its --jobserver-style, else its default), or
 * --mp-jobserver-style's, given to make 4.4 as its --jobserver-style.
 */
function adoptedPool(
  opts: {
    jobs: JobsRequest;
    runDir: string;
    clusterSlots: number;
    adoptStyle?: JobserverStyle | undefined;
  },
  jobs: 'all' | number,
  found: ReturnType<typeof findParentPool>,
  base: Omit<MakePool, 'kind' | 'fds' | 'makeflags' | 'textual'>,
): MakePool {
  if (found.found && found.pool?.kind === 'fifo') closeQuietly(found.pool.fd);
  const cap = typeof jobs === 'number' ? jobs : undefined;
  const slots = Math.max(1, Math.min(cap ?? Infinity, opts.clusterSlots));
  const own = new JobserverPool(opts.runDir, slots);
  return {
    ...base,
    kind: 'own',
    own,
    parent: found.found && found.pool?.kind === 'pipe' ? found.pool : undefined,
    fds: found.found ? sameNumbers(found.pool) : [],
    makeflags: undefined,
    makeArgs: [
      ...(opts.jobs === undefined ? [] : [`-j${cap ?? Math.max(opts.clusterSlots, 2)}`]),
      // Not a word of MAKEFLAGS: make keeps it to itself.
      ...(opts.adoptStyle ? [`--jobserver-style=${opts.adoptStyle}`] : []),
    ],
    textual: false,
    cap,
    adopted: true,
  };
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
