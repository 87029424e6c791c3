import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const AUTH_LABEL = 'mpmake-auth-v2';
/** Another label for the agent's proof, so a client's proof can never pass for one. */
const AGENT_LABEL = 'mpmake-agent-v2';
/** The most bytes of a client's nonce an agent signs. */
export const MAX_NONCE_BYTES = 64;

/**
 * What both proofs of one handshake cover: both ends' fresh random bytes,
 * the agent's identity as its hello gave it, and the TCP endpoint the
 * client is connected to (the agent's address and port as the client sees
 * them). A proof made for one connection to one agent proves nothing to
 * any other: a relay that forwards a client's proof to another agent (F2
 * of the 2026-12 audit) is refused there, because that agent's own
 * endpoint is not the one the client dialled.
 */
export interface HandshakeBinding {
  /** The agent's challenge (hello). */
  challenge: Uint8Array;
  /** The client's nonce (auth). */
  nonce: Uint8Array;
  /** The agent's node id (hello). */
  nodeId: string;
  /** `ADDRESS:PORT` of the agent as the client's socket sees it (see {@link endpointOf}). */
  endpoint: string;
}

/** A fresh challenge for one connection; never reused, so proofs cannot be replayed. */
export function newChallenge(): Uint8Array {
  return randomBytes(32);
}

/**
 * One socket end as `ADDRESS:PORT`, the same on both sides of a connection:
 * an IPv4-mapped IPv6 address is written as IPv4, IPv6 in brackets.
 */
export function endpointOf(address: string | undefined, port: number | undefined): string {
  let a = address ?? '';
  if (/^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(a)) a = a.slice(7);
  return a.includes(':') ? `[${a.toLowerCase()}]:${port ?? 0}` : `${a}:${port ?? 0}`;
}

function prove(secret: Buffer, label: string, b: HandshakeBinding): Uint8Array {
  const hmac = createHmac('sha256', secret).update(label);
  // Each field with its length, so no two bindings give the same bytes.
  for (const field of [b.challenge, b.nonce, Buffer.from(b.nodeId), Buffer.from(b.endpoint)]) {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(field.length, 0);
    hmac.update(length).update(field);
  }
  return hmac.digest();
}

function same(expected: Uint8Array, proof: Uint8Array | undefined): boolean {
  return (
    proof !== undefined && proof.length === expected.length && timingSafeEqual(proof, expected)
  );
}

/** The client's proof that it holds `secret`, for this one handshake. */
export function proveClient(secret: Buffer, binding: HandshakeBinding): Uint8Array {
  return prove(secret, AUTH_LABEL, binding);
}

/** Constant-time check of a client's proof. */
export function verifyClientProof(
  secret: Buffer,
  binding: HandshakeBinding,
  proof: Uint8Array,
): boolean {
  return same(proveClient(secret, binding), proof);
}

/**
 * The agent's proof that it holds `secret` (mutual authentication), over
 * the same binding as the client's, under another label.
 */
export function proveAgent(secret: Buffer, binding: HandshakeBinding): Uint8Array {
  return prove(secret, AGENT_LABEL, binding);
}

/** Constant-time check of an agent's proof; false when it sent none. */
export function verifyAgentProof(
  secret: Buffer,
  binding: HandshakeBinding,
  proof: Uint8Array | undefined,
): boolean {
  return same(proveAgent(secret, binding), proof);
}

/**
 * The agent's MPM_ERR_AUTH message when a client did not finish its
 * handshake in time: load (a starved machine, many clients dialling at
 * once), not identity, so the client tries that node again.
 */
export const AUTH_TIME_LIMIT = 'no auth within the time limit';
