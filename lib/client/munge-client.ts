/**
 * The client's side of MUNGE authentication (`--mp-auth=munge`, for agents
 * run with `--auth munge`): our credential for one handshake, from the
 * local munged, and the check of the agent's own one in its welcome.
 */
import { AgentAuthError, MpmakeError } from '../errors.js';
import type { HandshakeBinding } from '../protocol/auth.js';
import type { HelloMessage } from '../protocol/messages.js';
import { agentPayload, clientPayload, mungeDecode, mungeEncode } from '../protocol/munge.js';
import type { HostSpec, MungeClientMode } from './host-list.js';

/** Where the socket path came from, for messages. */
function socketOf(mode: MungeClientMode): string {
  return `${mode.socket} (${mode.socketFrom ?? 'munge\'s default; set --mp-munge-socket, MPMAKE_MUNGE_SOCKET or config key "mungeSocket" for another'})`;
}

/** Our credential for one handshake: bound to both nonces, the agent's name and the endpoint dialled. */
export async function clientCredential(
  binding: HandshakeBinding,
  channel: Uint8Array,
  mode: MungeClientMode,
): Promise<string> {
  try {
    return await mungeEncode(clientPayload(binding, channel), mode.socket);
  } catch (err) {
    throw new MpmakeError(
      'MPM_ERR_MUNGE',
      `cannot get a MUNGE credential from the local munged at ${socketOf(mode)}: ` +
        `${(err as Error).message}. Start munged here (Debian: apt install munge; ` +
        `systemctl start munge) with the cluster's key, or drop ${mode.from} [MPM_ERR_MUNGE]`,
    );
  }
}

/**
 * An error when the agent and we disagree on MUNGE: we would prove our uid
 * to an agent that runs every job as one user, or it wants a credential we
 * were not told to send.
 */
export function mungeMismatch(
  spec: HostSpec,
  hello: HelloMessage,
  mode: MungeClientMode | undefined,
): Error | undefined {
  const agentMunge = hello.munge === true;
  if (mode !== undefined && !agentMunge) {
    return new AgentAuthError(
      `the agent at ${spec.address} does not authenticate by MUNGE (it runs without --auth ` +
        `munge), but ${mode.from} says to: its jobs would not run as you. Drop ${mode.from}, ` +
        'or run that agent with --auth munge [MPM_ERR_AGENT_AUTH]',
    );
  }
  if (mode === undefined && agentMunge) {
    return new MpmakeError(
      'MPM_ERR_AUTH',
      `the agent at ${spec.address} authenticates by MUNGE (--auth munge): set ` +
        'MPMAKE_AUTH=munge, --mp-auth=munge or config "auth": "munge" [MPM_ERR_AUTH]',
    );
  }
  return undefined;
}

/**
 * Why the agent's credential in its welcome does not prove it is one of
 * ours, or undefined: it must decode here (the same MUNGE key, fresh, never
 * seen), be bound to this handshake, and come from root (a node's agent)
 * or from ourselves (an agent of our own).
 */
export async function agentCredentialProblem(
  credential: string | undefined,
  binding: HandshakeBinding,
  channel: Uint8Array,
  mode: MungeClientMode,
): Promise<Error | undefined> {
  const fail = (why: string): Error =>
    new AgentAuthError(
      `the agent did not prove that it belongs to this MUNGE cluster: ${why}; nothing of ` +
        'the build was sent to it [MPM_ERR_AGENT_AUTH]',
    );
  if (credential === undefined) return fail('it sent no MUNGE credential');
  try {
    const { uid, payload } = await mungeDecode(credential, mode.socket);
    if (!payload.equals(agentPayload(binding, channel))) {
      return fail('its credential was not made for this connection (a relay?)');
    }
    const me = process.geteuid?.() ?? -1;
    if (uid !== 0 && uid !== me) return fail(`its credential is for uid ${uid}, not root`);
    return undefined;
  } catch (err) {
    return fail(`its credential does not decode here (${(err as Error).message})`);
  }
}
