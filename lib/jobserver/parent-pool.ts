import { constants, fstatSync, openSync, statSync } from 'node:fs';

/** A jobserver pool that a parent make (or mpmake) advertised to us. */
export type ParentPool =
  { kind: 'pipe'; readFd: number; writeFd: number } | { kind: 'fifo'; path: string; fd: number };

export type ParentPoolResult =
  | { found: false }
  | { found: true; pool: ParentPool }
  | { found: true; pool: undefined; why: string };

const isFifoFd = (fd: number): boolean => {
  try {
    return fstatSync(fd).isFIFO();
  } catch {
    return false;
  }
};

/**
 * Finds the parent's pool from the value of MAKEFLAGS' last
 * `--jobserver-auth=` (or the older `--jobserver-fds=`) word (undefined:
 * none; the caller reads MAKEFLAGS), in both styles: `R,W` fds we
 * inherited, or `fifo:PATH`. An advertised pool that we cannot use (fds
 * closed because the recipe line was not marked recursive, make's `-2,-2`,
 * a missing FIFO) is reported with the reason, for one warning.
 */
export function findParentPool(auth: string | undefined): ParentPoolResult {
  if (auth === undefined) return { found: false };
  if (auth.startsWith('fifo:')) {
    const path = auth.slice(5);
    try {
      if (!statSync(path).isFIFO())
        return { found: true, pool: undefined, why: `${path} is not a FIFO` };
      const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
      return { found: true, pool: { kind: 'fifo', path, fd } };
    } catch (err) {
      return {
        found: true,
        pool: undefined,
        why: `cannot open ${path}: ${(err as Error).message}`,
      };
    }
  }
  const m = /^(-?\d+),(-?\d+)$/.exec(auth);
  if (!m) return { found: true, pool: undefined, why: `cannot parse --jobserver-auth=${auth}` };
  const [r, w] = [Number(m[1]), Number(m[2])];
  if (r < 0 || w < 0)
    return {
      found: true,
      pool: undefined,
      why: 'the parent make did not pass its jobserver to this line',
    };
  if (!isFifoFd(r) || !isFifoFd(w)) {
    return { found: true, pool: undefined, why: `jobserver fds ${r},${w} are not open here` };
  }
  return { found: true, pool: { kind: 'pipe', readFd: r, writeFd: w } };
}
