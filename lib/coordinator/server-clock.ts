/**
 * The file server's clock, as the start checks see it: make compares the
 * times the shared file system stamps on files, so each node's clock is
 * compared with the server's, read off the probe file's mtime.
 */
import { statSync } from 'node:fs';

/**
 * The file server's clock minus ours as a range, from the mtime it stamped
 * on a file we wrote between `before` and `after` (our clock). An mtime
 * with no sub-second part (sftp) stands for anything in that second.
 */
export function serverSkew(path: string, before: number, after: number): ClockRange | undefined {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  if (!st) return undefined;
  const mtimeMs = Number(st.mtimeNs / 1_000_000n);
  const wholeSeconds = st.mtimeNs % 1_000_000_000n === 0n;
  return { lo: mtimeMs - after, hi: mtimeMs + (wholeSeconds ? 1000 : 1) - before };
}

/** A clock difference known only to lie between `lo` and `hi` (ms). */
export interface ClockRange {
  lo: number;
  hi: number;
}

/**
 * How far a clock difference surely is, when all of `range` lies past
 * `limitMs` on one side (the nearer end, signed); else undefined. A slow
 * answer widens the range, and cannot by itself get a node left out.
 */
export function surelyBeyond(range: ClockRange, limitMs: number): number | undefined {
  if (range.lo > limitMs) return Math.round(range.lo);
  if (range.hi < -limitMs) return Math.round(range.hi);
  return undefined;
}

/**
 * How far a node's clock (`node`: node minus ours, as a range) is surely
 * from the file server's, when that is more than `limitMs`; else undefined.
 */
export function skewToServer(
  node: ClockRange,
  server: ClockRange,
  limitMs: number,
): number | undefined {
  // node - server lies in [node.lo - server.hi, node.hi - server.lo].
  return surelyBeyond({ lo: node.lo - server.hi, hi: node.hi - server.lo }, limitMs);
}
