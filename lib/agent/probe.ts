import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { runBounded } from './bounded-exec.js';
import { cwdRefusal } from './job-check.js';
import { credsArg, nativeLauncher, rootsArg } from './job-command.js';
import type { RunAs } from './run-as.js';

/** A probe file larger than this is not one of ours. */
export const MAX_PROBE_BYTES = 4096;

export interface ProbeOutcome {
  ok: boolean;
  reason: string;
}

/**
 * Checks that `path` holds exactly `content` on this node: the coordinator
 * wrote it just before, so a miss means this node does not share the
 * client's file system, or sees it through a stale attribute cache.
 */
export async function checkProbe(path: string, content: string): Promise<ProbeOutcome> {
  let bytes: Buffer;
  try {
    // O_NONBLOCK: a FIFO at that path must not hang a thread-pool thread.
    // O_NOFOLLOW: the coordinator writes a plain file; a symlink could lead
    // out of the agent's roots.
    const file = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
    try {
      if (!(await file.stat()).isFile()) {
        return { ok: false, reason: `${path} is not a regular file` };
      }
      const buffer = Buffer.alloc(MAX_PROBE_BYTES + 1);
      const { bytesRead } = await file.read(buffer, 0, buffer.length, 0);
      bytes = buffer.subarray(0, bytesRead);
    } finally {
      await file.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return {
        ok: false,
        reason: `no such file: ${path} — does this node see the same file system?`,
      };
    }
    return { ok: false, reason: `cannot read ${path}: ${(err as Error).message}` };
  }
  if (bytes.length > MAX_PROBE_BYTES) {
    return {
      ok: false,
      reason: `${path} is larger than ${MAX_PROBE_BYTES} bytes: not a probe file`,
    };
  }
  if (!bytes.equals(Buffer.from(content, 'utf8'))) {
    return { ok: false, reason: `content differs — stale NFS attribute cache? (${path})` };
  }
  return { ok: true, reason: '' };
}

/** A probe through the launcher that takes longer than this (a hung mount) fails. */
const PROBE_TIMEOUT_MS = 10_000;

/**
 * The start check as the job's user, where jobs would run: the launcher
 * (build/mpmake-exec, flag p) drops to `runAs` first, then opens `path`
 * without following a last symlink and without opening what is not a
 * regular file, checks the real path of what it opened against `roots`,
 * reads it, and checks that the user may write its directory (the build
 * directory: a node whose job user cannot write there would fail every
 * compile). So a probe reveals nothing the job user could not read, opens
 * no FIFO or device, and cannot be raced out of the roots. Without the
 * launcher (not built), the agent reads the file itself (its own user:
 * no --user, which needs the launcher).
 */
export async function probeAs(
  path: string,
  content: string,
  runAs: RunAs | undefined,
  roots: readonly string[],
): Promise<ProbeOutcome> {
  const launcher = nativeLauncher();
  if (launcher === undefined) {
    const refusal = await cwdRefusal(dirname(path), roots, 'probe directory');
    return refusal === undefined
      ? checkProbe(path, content)
      : { ok: false, reason: refusal.message };
  }
  const args = ['0', runAs ? 'pu' : 'p', '-', rootsArg(roots)];
  if (runAs) args.push(credsArg(runAs), '-');
  args.push('--', path);
  // Not execFile's timeout: it reports a launcher that finished while we
  // were starved as a success with no output (bounded-exec.ts).
  const out = await runBounded(launcher, args, {
    cwd: '/',
    env: {},
    timeoutMs: PROBE_TIMEOUT_MS,
    maxBytes: 16384,
  }).then(
    (r) =>
      r.code === 0
        ? r.stdout
        : new Error(
            r.stderr.toString().trim() ||
              (r.killed === 'time'
                ? `no answer within ${PROBE_TIMEOUT_MS / 1000} s`
                : r.killed === 'output'
                  ? 'the launcher said too much'
                  : `the launcher ended with ${r.signal ?? `status ${r.code}`}`),
          ),
    (err: Error) => err,
  );
  if (out instanceof Error) return { ok: false, reason: `cannot check ${path}: ${out.message}` };
  const eol = out.indexOf(10);
  const head = out.subarray(0, eol < 0 ? out.length : eol).toString();
  const [word = '', ...rest] = head.split(' ');
  const detail = rest.join(' ');
  const who = runAs ? `${runAs.name} (uid ${runAs.uid})` : 'the agent';
  switch (word) {
    case 'ok':
      return compareProbe(path, out.subarray(eol + 1), content);
    case 'missing':
      return {
        ok: false,
        reason: `no such file: ${path} — does this node see the same file system?`,
      };
    case 'notfile':
      return { ok: false, reason: `${path} is not a regular file` };
    case 'outside':
      return {
        ok: false,
        reason: `probe file ${path} is outside this agent's --root directories (${roots.join(', ')})`,
      };
    case 'nowrite':
      return {
        ok: false,
        reason: `${who} cannot write ${detail} on this node: jobs run as that user would fail`,
      };
    default:
      return { ok: false, reason: `${who} cannot read ${path}: ${detail || head}` };
  }
}

function compareProbe(path: string, bytes: Buffer, content: string): ProbeOutcome {
  if (bytes.length > MAX_PROBE_BYTES) {
    return {
      ok: false,
      reason: `${path} is larger than ${MAX_PROBE_BYTES} bytes: not a probe file`,
    };
  }
  if (!bytes.equals(Buffer.from(content, 'utf8'))) {
    return { ok: false, reason: `content differs — stale NFS attribute cache? (${path})` };
  }
  return { ok: true, reason: '' };
}
