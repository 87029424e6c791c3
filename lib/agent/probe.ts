import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

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
