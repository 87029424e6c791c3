/**
 * A node's side of "nothing stale": what it sees of a job's targets once
 * the job's processes have exited, and the wait until it sees a job's
 * inputs (written elsewhere in this build) as their writer did. See
 * DESIGN.md, "Shared file systems, as they really are".
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { constants } from 'node:fs';
import type { FileSeen, InputWait } from '../protocol/messages.js';
import { decodeFresh, expectPayload } from '../shim/shim-protocol.js';
import { credsArg, nativeLauncher, rootsArg } from './job-command.js';
import { packageRoot } from './package-root.js';
import type { RunAs } from './run-as.js';

const NS = 1_000_000_000n;

/** Whether `path` lies under one of `roots` (by its text: stat reveals little). */
export function underRoots(path: string, roots: readonly string[]): boolean {
  const p = normalize(path);
  return roots.some((r) => r === sep || p === r || p.startsWith(r.endsWith(sep) ? r : r + sep));
}

/** What this machine's stat() says of `path` now. */
export async function seeFile(path: string): Promise<FileSeen> {
  try {
    const st = await stat(path, { bigint: true });
    return {
      path,
      size: Number(st.size),
      mtimeS: Number(st.mtimeNs / NS),
      mtimeNs: Number(st.mtimeNs % NS),
      ino: st.ino.toString(),
    };
  } catch {
    return { path, absent: true };
  }
}

/** `seeFile` of each path under the roots (others are left out). */
export function seeFiles(paths: readonly string[], roots: readonly string[]): Promise<FileSeen[]> {
  return Promise.all(paths.filter((p) => underRoots(p, roots)).map(seeFile));
}

let nativeShim: string | null | undefined;

function revalidator(): string | undefined {
  if (nativeShim === undefined) {
    const p = join(packageRoot(), 'build', 'mpmake-shim');
    nativeShim = existsSync(p) ? p : null;
  }
  return nativeShim ?? undefined;
}

/** Whose view a job's inputs are revalidated in: the job's user, in its directory. */
export interface RevalidateAs {
  runAs: RunAs;
  cwd: string;
  roots: readonly string[];
}

/**
 * Waits (at most `waitMs`) until this node sees each input as its writer
 * did: through the native shim's `--mp-revalidate` (statx with
 * AT_STATX_FORCE_SYNC), or, without it, by opening the parent directory
 * and the file before a plain stat. With `as` (a job run as another
 * user), the shim runs as that user, under the job launcher (which drops
 * to the user and checks the directory against the roots), so it sees
 * only what the job would, and looks nothing up as root.
 */
export async function revalidateInputs(
  inputs: readonly FileSeen[],
  waitMs: number,
  from: string,
  as?: RevalidateAs,
): Promise<InputWait> {
  const shim = revalidator();
  const launcher = as ? nativeLauncher() : undefined;
  if (shim && (!as || launcher)) {
    const payload = expectPayload(waitMs, from, inputs);
    const [file, args] =
      as && launcher
        ? [
            launcher,
            [
              '022',
              'u',
              '-',
              rootsArg(as.roots),
              credsArg(as.runAs),
              '-',
              '--',
              shim,
              '--mp-revalidate',
            ],
          ]
        : [shim, ['--mp-revalidate']];
    const out = await new Promise<Buffer | undefined>((resolve) => {
      const child = execFile(
        file,
        args,
        { encoding: 'buffer', env: {}, timeout: waitMs + 10_000, ...(as ? { cwd: as.cwd } : {}) },
        (err, stdout) =>
          resolve(err && (err as { code?: unknown }).code !== 3 ? undefined : stdout),
      );
      child.stdin?.on('error', () => {});
      child.stdin?.end(payload);
    });
    if (out) {
      try {
        return decodeFresh(out);
      } catch {
        // fall through to the plain wait
      }
    }
  }
  return plainWait(inputs, waitMs);
}

/** Without statx: open the directory and the file, then stat; short growing waits. */
export async function plainWait(inputs: readonly FileSeen[], waitMs: number): Promise<InputWait> {
  const start = Date.now();
  let retries = 0;
  let nap = 1;
  let left = [...inputs];
  for (;;) {
    const still: FileSeen[] = [];
    for (const want of left) if (!sameAsWriter(await reopen(want.path), want)) still.push(want);
    left = still;
    const spent = Date.now() - start;
    if (left.length === 0 || spent >= waitMs) break;
    await new Promise((r) => setTimeout(r, Math.min(nap, waitMs - spent)));
    retries++;
    nap = Math.min(nap * 2, 100);
  }
  return { lagMs: Date.now() - start, retries, stale: left.map((f) => f.path) };
}

/** Opens the directory, then the file (close-to-open), then stats it. */
async function reopen(path: string): Promise<FileSeen> {
  for (const [p, flags] of [
    [dirname(path), constants.O_RDONLY | constants.O_DIRECTORY],
    [path, constants.O_RDONLY | constants.O_NONBLOCK],
  ] as const) {
    try {
      await (await open(p, flags)).close();
    } catch {
      // absent, or not readable: the stat says what there is
    }
  }
  return seeFile(path);
}

/** Size and mtime agree (to the second when one side has whole seconds). */
export function sameAsWriter(seen: FileSeen, want: FileSeen): boolean {
  if (want.absent || seen.absent) return Boolean(want.absent) === Boolean(seen.absent);
  if (seen.size !== want.size || seen.mtimeS !== want.mtimeS) return false;
  return !want.mtimeNs || !seen.mtimeNs || want.mtimeNs === seen.mtimeNs;
}
