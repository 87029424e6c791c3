import { JobserverPool } from '../jobserver/pool.js';
import { findParentPool, type ParentPool } from '../jobserver/parent-pool.js';
import { composeMakeflags, rewriteJobserverAuth } from './makeflags.js';
import type { JobsRequest } from './make-args.js';

export type JobserverStyle = 'pipe' | 'fifo';

/** How the make that mpmake starts gets its jobserver. */
export interface MakePool {
  /** 'own': mpmake's pool; 'parent': the one we were given; 'none': serial. */
  kind: 'own' | 'parent' | 'none';
  own: JobserverPool | undefined;
  parent: ParentPool | undefined;
  /** fds to hand to make as its fds 3, 4, … */
  fds: number[];
  makeflags: string;
  /** The shim must know recursive lines by their text, not by fds. */
  textual: boolean;
  /** How many slots were asked for: N of -jN, or undefined for the cluster's. */
  cap: number | undefined;
  /** One line to print, when a parent's pool could not be used. */
  warning: string | undefined;
}

/**
 * Decides the jobserver of the make mpmake starts, as make itself would:
 * - run under a parent make (or mpmake) whose pool reaches us: join it,
 *   obeying the parent's -j, unless -j is given here ("-jN forced in
 *   submake"); an advertised pool that does not reach us: one warning and
 *   a serial build, as make does, never a hang;
 * - otherwise -j/-jN: our own pool, sized to the cluster (and at most N);
 * - no -j: no pool at all (in jobserver mode, even with one slot, make
 *   visits targets in another order than serial make does).
 */
export function setupMakePool(opts: {
  env: NodeJS.ProcessEnv;
  jobs: JobsRequest;
  runDir: string;
  clusterSlots: number;
  style: JobserverStyle;
}): MakePool {
  const userFlags = opts.env['MAKEFLAGS'];
  const found = findParentPool(userFlags);
  const cap = typeof opts.jobs === 'number' ? opts.jobs : undefined;
  const base = { own: undefined, parent: undefined, cap, warning: undefined };
  let warning: string | undefined;
  if (opts.jobs === undefined && found.found) {
    if (found.pool?.kind === 'pipe') {
      const { readFd, writeFd } = found.pool;
      const fds = readFd === writeFd ? [readFd] : [readFd, writeFd];
      const auth = readFd === writeFd ? '3,3' : '3,4';
      return {
        ...base,
        kind: 'parent',
        parent: found.pool,
        fds,
        makeflags: rewriteJobserverAuth(userFlags ?? '', auth),
        textual: false,
      };
    }
    if (found.pool?.kind === 'fifo') {
      // Handed to make as fds, which every make since 4.0 understands.
      return {
        ...base,
        kind: 'parent',
        parent: found.pool,
        fds: [found.pool.fd],
        makeflags: rewriteJobserverAuth(userFlags ?? '', '3,3'),
        textual: false,
      };
    }
    const why = 'why' in found ? found.why : 'unusable';
    warning = `mpmake: warning: jobserver unavailable (${why}): using -j1. Add '+' to the parent make rule.`;
  } else if (opts.jobs !== undefined && found.found && found.pool) {
    warning = 'mpmake: warning: -jN forced in submake: resetting jobserver mode.';
  }
  if (opts.jobs === undefined || opts.jobs === 1) {
    return {
      ...base,
      kind: 'none',
      fds: [],
      makeflags: composeMakeflags(userFlags, 1, undefined),
      textual: true,
      warning,
    };
  }
  const slots = Math.max(1, Math.min(cap ?? Infinity, opts.clusterSlots));
  const own = new JobserverPool(opts.runDir, slots);
  const shown = cap ?? Math.max(opts.clusterSlots, 2);
  if (opts.style === 'fifo') {
    return {
      ...base,
      kind: 'own',
      own,
      fds: [],
      makeflags:
        composeMakeflags(userFlags, shown, undefined) + ` --jobserver-auth=fifo:${own.path}`,
      textual: true,
      warning,
    };
  }
  return {
    ...base,
    kind: 'own',
    own,
    fds: [own.fd],
    makeflags: composeMakeflags(userFlags, shown, 3),
    textual: false,
    warning,
  };
}
