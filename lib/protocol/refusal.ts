/**
 * Why an agent refused a job (MPM_ERR_JOB_REFUSED), as a code the client
 * decides by; the message beside it is for people only.
 */
/**
 * - `queue-limit`: the client already has --max-queued-per-client jobs waiting there;
 * - `byte-budget`: the waiting jobs' bytes would pass a --max-queued-bytes budget;
 * - `job-too-big`: the job alone is over a byte budget: it can never wait there;
 * - `invalid-job`: the job as sent cannot run (argv or environment over exec's
 *   limits, a NUL byte, umask or terminal size out of range, an id in use);
 * - `outside-roots`: its directory is outside the agent's --root directories;
 * - `no-cwd`: its directory does not exist there (the node does not share the tree);
 * - `permission`: the agent may not look at its directory.
 */
export const REFUSAL_KINDS = [
  'queue-limit',
  'byte-budget',
  'job-too-big',
  'invalid-job',
  'outside-roots',
  'no-cwd',
  'permission',
] as const;

// Its schema is in messages.ts: the client uses this module without TypeBox.
export type RefusalKind = (typeof REFUSAL_KINDS)[number];

/** A refusal: its kind and the words for people. */
export interface Refusal {
  kind: RefusalKind;
  message: string;
}

/**
 * Whether the refusal is about the node's load, so the same job may be
 * taken there once a slot frees; any other kind will not change on that
 * node, so the job is never sent there again.
 */
export function isLoadRefusal(kind: RefusalKind): boolean {
  return kind === 'queue-limit' || kind === 'byte-budget';
}
