import type { WireText } from '../protocol/messages.js';
import { DEFAULT_ENV_FILTER, type EnvFilter } from './env-filter.js';
import { cleanMakeflagsForRemote } from './makeflags.js';

/** Variables that only make sense on the client, never shipped to a node (and every `__MPMAKE_*`). */
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
 * also their definitions on make's command line, which MAKEFLAGS repeats).
 * Nothing is added: the agent adds only the documented MPMAKE_NODE, and a
 * shim there is a plain shell because MPMAKE_SOCK never leaves. The names
 * held back are added to `heldBack`, each with the rule that held it. A job
 * for the client itself (the `localhost/N` agent) gets SHIP_EVERYTHING.
 */
export function remoteEnv(
  env: Record<string, WireText>,
  filter: EnvFilter = DEFAULT_ENV_FILTER,
  heldBack?: Map<string, string>,
): Record<string, WireText> {
  const out: Record<string, WireText> = {};
  const dropVariable = (name: string, value?: WireText): boolean => {
    const rule = filter.heldBy(name, value);
    if (rule !== undefined) heldBack?.set(name, rule);
    return rule !== undefined;
  };
  for (const [k, v] of Object.entries(env)) {
    if (CLIENT_ONLY.has(k) || k.startsWith('__MPMAKE_')) continue;
    const makeflags = k === 'MAKEFLAGS' || k === 'MFLAGS';
    // MAKEFLAGS is judged word by word: one definition in it must not hold back all of it.
    if (dropVariable(k, makeflags ? undefined : v)) continue;
    out[k] = makeflags && typeof v === 'string' ? cleanMakeflagsForRemote(v, dropVariable) : v;
  }
  return out;
}
