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
export function serverSkew(
  path: string,
  before: number,
  after: number,
): { lo: number; hi: number } | undefined {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  if (!st) return undefined;
  const mtimeMs = Number(st.mtimeNs / 1_000_000n);
  const wholeSeconds = st.mtimeNs % 1_000_000_000n === 0n;
  return { lo: mtimeMs - after, hi: mtimeMs + (wholeSeconds ? 1000 : 1) - before };
}

/**
 * How far a node's clock (`nodeSkewMs`, node minus ours) is surely from the
 * file server's, when that is more than `limitMs`; else undefined.
 */
export function skewToServer(
  nodeSkewMs: number,
  server: { lo: number; hi: number },
  limitMs: number,
): number | undefined {
  // node - server lies in [nodeSkew - hi, nodeSkew - lo].
  const least = nodeSkewMs - server.hi;
  const most = nodeSkewMs - server.lo;
  if (least > limitMs) return Math.round(least);
  if (most < -limitMs) return Math.round(most);
  return undefined;
}
