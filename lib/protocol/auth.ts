import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const AUTH_LABEL = 'mpmake-auth-v1';

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
