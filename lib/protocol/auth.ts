import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const AUTH_LABEL = 'mpmake-auth-v1';
/** Another label for the agent's proof, so a client's proof can never pass for one. */
const AGENT_LABEL = 'mpmake-agent-v1';
/** The most bytes of a client's nonce an agent signs. */
export const MAX_NONCE_BYTES = 64;

/** A fresh challenge for one connection; never reused, so proofs cannot be replayed. */
export function newChallenge(): Uint8Array {
  return randomBytes(32);
}

/** The client's proof that it holds `secret`, bound to this connection's challenge. */
export function proveSecret(secret: Buffer, challenge: Uint8Array): Uint8Array {
  return createHmac('sha256', secret).update(AUTH_LABEL).update(challenge).digest();
}

/** Constant-time check of a client's proof. */
export function verifyProof(secret: Buffer, challenge: Uint8Array, proof: Uint8Array): boolean {
  const expected = proveSecret(secret, challenge);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}

/**
 * The agent's proof that it holds `secret` (mutual authentication): over
 * its own challenge and the client's fresh nonce, each with its length, so
 * a proof answers exactly one client on exactly one connection.
 */
export function proveAgent(secret: Buffer, challenge: Uint8Array, nonce: Uint8Array): Uint8Array {
  const lengths = Buffer.alloc(8);
  lengths.writeUInt32BE(challenge.length, 0);
  lengths.writeUInt32BE(nonce.length, 4);
  return createHmac('sha256', secret)
    .update(AGENT_LABEL)
    .update(lengths)
    .update(challenge)
    .update(nonce)
    .digest();
}

/** Constant-time check of an agent's proof; false when it sent none. */
export function verifyAgentProof(
  secret: Buffer,
  challenge: Uint8Array,
  nonce: Uint8Array,
  proof: Uint8Array | undefined,
): boolean {
  if (proof === undefined) return false;
  const expected = proveAgent(secret, challenge, nonce);
  return proof.length === expected.length && timingSafeEqual(proof, expected);
}
