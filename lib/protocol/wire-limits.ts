/**
 * Facts of the wire protocol that code outside the schemas needs at run
 * time (kept apart from messages.ts so that using them loads no TypeBox).
 */

/**
 * Protocol version; an agent refuses a client with another one. 2: proofs
 * bind both nonces, the agent's name and the endpoint dialled (auth.ts).
 * 3: a refused job's error says why as a code (`refusal`, refusal.ts).
 */
export const PROTOCOL_VERSION = 3;

/** At most this many files in a job's `produces`, `inputs` or an exit's `seen`. */
export const MAX_FILES_SEEN = 4096;

/**
 * At most this many other users' counts in a load report's `others` (the
 * largest; optional fields, so version 3 agents and clients still agree).
 */
export const MAX_FAIR_USERS = 256;
