import type { WireText } from '../protocol/messages.js';
import { DEFAULT_ENV_FILTER, type EnvFilter } from './env-filter.js';
import { cleanMakeflagsForRemote } from './makeflags.js';

/** Variables that only make sense on the client, never shipped to a node. */
const CLIENT_ONLY = new Set([
  'MPMAKE_SOCK',
  'MPMAKE_REAL_SHELL',
  'MPMAKE_LOCAL',
  'MPMAKE_MAKE_NAME',
  'MPMAKE_JOBSERVER_TEXTUAL',
  'MPMAKE_TARGET',
  'MPMAKE_PREREQS',
]);

/**
 * The environment a recipe gets on a node: the shim's own environment (so
 * exported and target-specific variables arrive as make set them), with
 * MAKEFLAGS/MFLAGS cleaned of client-only words, mpmake's private variables
 * removed, variables that look like secrets held back (see env-filter.ts;
 * also their definitions on make's command line, which MAKEFLAGS repeats),
 * and MPMAKE_REMOTE=1 so a nested shim is a plain shell there. The names
 * held back are added to `heldBack`.
 */
export function remoteEnv(
  env: Record<string, WireText>,
  filter: EnvFilter = DEFAULT_ENV_FILTER,
  heldBack?: Set<string>,
): Record<string, WireText> {
  const out: Record<string, WireText> = {};
  const dropVariable = (name: string): boolean => {
    const held = filter.holdsBack(name);
    if (held) heldBack?.add(name);
    return held;
  };
  for (const [k, v] of Object.entries(env)) {
    if (CLIENT_ONLY.has(k)) continue;
    if (dropVariable(k)) continue;
    out[k] =
      (k === 'MAKEFLAGS' || k === 'MFLAGS') && typeof v === 'string'
        ? cleanMakeflagsForRemote(v, dropVariable)
        : v;
  }
  out['MPMAKE_REMOTE'] = '1';
  return out;
}
