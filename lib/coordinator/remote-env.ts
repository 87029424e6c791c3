import type { WireText } from '../protocol/messages.js';
import { cleanMakeflagsForRemote } from './makeflags.js';

/** Variables that only make sense on the client, never shipped to a node. */
const CLIENT_ONLY = new Set([
  'MPMAKE_SOCK',
  'MPMAKE_REAL_SHELL',
  'MPMAKE_LOCAL',
  'MPMAKE_MAKE_NAME',
  'MPMAKE_JOBSERVER_TEXTUAL',
  'MPMAKE_TARGET',
]);

/**
 * The environment a recipe gets on a node: the shim's own environment (so
 * exported and target-specific variables arrive as make set them), with
 * MAKEFLAGS/MFLAGS cleaned of client-only words, mpmake's private variables
 * removed, and MPMAKE_REMOTE=1 so a nested shim is a plain shell there.
 */
export function remoteEnv(env: Record<string, WireText>): Record<string, WireText> {
  const out: Record<string, WireText> = {};
  for (const [k, v] of Object.entries(env)) {
    if (CLIENT_ONLY.has(k)) continue;
    out[k] = (k === 'MAKEFLAGS' || k === 'MFLAGS') && typeof v === 'string' ? cleanMakeflagsForRemote(v) : v;
  }
  out['MPMAKE_REMOTE'] = '1';
  return out;
}
