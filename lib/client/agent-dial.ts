/**
 * Dialling one agent and the handshake, for every client (mpmake's
 * NodeChannel, `mpm status`/`top`, `mpm exec`): TLS or plain TCP as the
 * host's spec says, the client's proof bound to this handshake (both
 * nonces, the agent's name, the endpoint dialled: auth.ts), and the
 * agent's proof checked before anything of the build is sent. One place,
 * so no client can lag behind another on TLS or proofs.
 */
import { connect, type Socket } from 'node:net';
import { AgentAuthError, FrameTooLargeError, ProtocolError, TlsError } from '../errors.js';
import {
  AUTH_TIME_LIMIT,
  endpointOf,
  newChallenge,
  proveClient,
  verifyAgentProof,
  type HandshakeBinding,
} from '../protocol/auth.js';
import { Channel } from '../protocol/channel.js';
import { checkAgentMessage } from '../protocol/message-check.js';
import { PROTOCOL_VERSION } from '../protocol/wire-limits.js';
import {
  type AgentToClient,
  type AuthMessage,
  type ClientToAgent,
  type HelloMessage,
  type WelcomeMessage,
} from '../protocol/messages.js';
import { channelBinding } from '../protocol/munge.js';
import { connectTls, isTlsError } from '../protocol/tls.js';
import {
  CLOSED_BEFORE_HELLO,
  lengthAsText,
  noAnswer,
  notAnAgent,
  secretRefused,
  speaksTls,
  tlsFailed,
} from './connect-problem.js';
import type { HostSpec } from './host-list.js';
import { agentCredentialProblem, clientCredential, mungeMismatch } from './munge-client.js';
import { completesTlsHandshake } from './tls-probe.js';

export type AgentChannel = Channel<AgentToClient, ClientToAgent>;

/** Messages held while the agent's MUNGE credential is checked (loads, at most). */
const MAX_HELD_MESSAGES = 16;
/** An agent's error codes that say trying again will not help. */
const REFUSALS = new Set(['MPM_ERR_AUTH', 'MPM_ERR_MUNGE_CRED', 'MPM_ERR_UID_REFUSED']);

export interface DialOptions {
  /** The cluster secret (the spec's own one wins). */
  secret: Buffer | undefined;
  /** Where the secret came from (`MPMAKE_SECRET_FILE`, …), to name in a refusal. */
  secretFrom?: string | undefined;
  /** Who we are, as the agent lists us. */
  client: AuthMessage['client'];
  /** For connecting and the whole handshake. */
  timeoutMs: number;
  /**
   * The name this address answered with before: an agent there with
   * another name is refused (a relay to another node, or a stranger).
   */
  expectNodeId?: string | undefined;
}

export interface DialHandlers {
  /** Our auth is on its way. */
  authSent?(): void;
  /** Both ends proved the secret (or neither has one); messages follow. */
  ready(welcome: WelcomeMessage): void;
  /** Every message after the welcome, in order. */
  message(m: AgentToClient): void;
  /**
   * The connection ended (once). `refused`: trying again will not help
   * (wrong secret, no proof, TLS mismatch, another protocol version).
   */
  closed(err: Error | undefined, how: { authed: boolean; refused: boolean }): void;
}

/**
 * The auth message that answers `hello` on `socket` (exported for tests and
 * tools). `bound`: make the binding (nonce, endpoint) even without a
 * secret, for a MUNGE credential over it.
 */
export function authFor(
  secret: Buffer | undefined,
  hello: HelloMessage,
  socket: Socket,
  client: AuthMessage['client'],
  bound = false,
): { auth: AuthMessage; binding: HandshakeBinding | undefined } {
  const endpoint = endpointOf(socket.remoteAddress, socket.remotePort);
  if (!secret && !bound) {
    return {
      auth: { type: 'auth', version: PROTOCOL_VERSION, proof: new Uint8Array(0), client, endpoint },
      binding: undefined,
    };
  }
  // Our own challenge to the agent: it must sign it in its welcome.
  const binding = {
    challenge: hello.challenge,
    nonce: newChallenge(),
    nodeId: hello.nodeId,
    endpoint,
  };
  const proof = secret ? proveClient(secret, binding) : new Uint8Array(0);
  return {
    auth: {
      type: 'auth',
      version: PROTOCOL_VERSION,
      proof,
      client,
      nonce: binding.nonce,
      endpoint,
    },
    binding,
  };
}

/**
 * Connects to `spec` and runs the handshake. Returns the channel at once
 * (to close it early), or a reason when it cannot even start.
 */
export function dialAgent(
  spec: HostSpec,
  options: DialOptions,
  on: DialHandlers,
): { channel: AgentChannel } | { refusal: string } {
  const secret = spec.secret ?? options.secret;
  const tls = spec.tls === true;
  let socket: Socket;
  if (tls) {
    if (!secret) {
      return {
        refusal:
          'reached over TLS (the default off loopback), which is keyed by the cluster ' +
          'secret, and none is set: give the secret file (mpmake --mp-secret-file, ' +
          'mpm --secret-file, MPMAKE_SECRET_FILE or config key "secretFile"); for agents run ' +
          'with --insecure, --mp-insecure (mpm: --insecure) [MPM_ERR_USAGE]',
      };
    }
    socket = connectTls(spec.host, spec.port, secret);
  } else socket = connect({ host: spec.host, port: spec.port });
  const channel: AgentChannel = new Channel(socket, { check: checkAgentMessage });
  // Connected, but TLS not (yet) up: a close then is a failed handshake.
  let tlsPending = false;
  if (tls) {
    socket.once('connect', () => (tlsPending = true));
    socket.once('secureConnect', () => (tlsPending = false));
  }
  let hello: HelloMessage | undefined;
  let binding: HandshakeBinding | undefined;
  let authed = false;
  const munge = spec.munge;
  /** Messages after the welcome while the agent's MUNGE credential is checked. */
  let held: AgentToClient[] | undefined;
  let refused = false;
  const refuse = (err: Error): void => {
    refused = true;
    channel.destroy(err);
  };
  let connected = false;
  socket.once('connect', () => (connected = true));
  const timedOut = (): Error =>
    new Error(
      hello
        ? `no answer within ${options.timeoutMs} ms`
        : noAnswer(options.timeoutMs, connected, tls),
    );
  const onTimeout = (): void => {
    // A welcome that came is being checked (our munged, its own bound): answered.
    if (channel.isClosed || authed || held !== undefined) return;
    if (hello || !connected || tls || !secret) {
      channel.destroy(timedOut());
      return;
    }
    // Silent to a plain connection: an agent run with --tls waits for our
    // TLS hello as we wait for its hello. Say so, once, rather than retry.
    void completesTlsHandshake(spec.host, spec.port, secret, options.timeoutMs).then(
      (speaksTlsThere) => {
        // The hello came meanwhile, and the welcome is being checked: answered.
        if (channel.isClosed || authed || held !== undefined) return;
        if (speaksTlsThere && !hello) refuse(new TlsError(speaksTls(options.timeoutMs)));
        else channel.destroy(timedOut());
      },
    );
  };
  // Judged after what has already come is read: a starved client runs its
  // due timers before it reads its sockets, where the agent's answer may
  // be waiting (issue 15: twelve MUNGE users at load 25-37 left agents out
  // with "no answer within 3000 ms").
  const timer = setTimeout(() => setImmediate(onTimeout), options.timeoutMs);

  const becomeReady = (welcome: WelcomeMessage): void => {
    authed = true;
    clearTimeout(timer);
    on.ready(welcome);
    for (const m of held ?? []) if (!channel.isClosed) on.message(m);
    held = undefined;
  };
  channel.on('message', (m) => {
    if (authed) {
      on.message(m);
      return;
    }
    if (held !== undefined) {
      // The agent's credential is being checked: its load reports wait.
      if (held.length >= MAX_HELD_MESSAGES) {
        channel.destroy(new Error('the agent sent too much before its welcome [MPM_ERR_PROTOCOL]'));
      } else held.push(m);
      return;
    }
    switch (m.type) {
      case 'hello': {
        if (hello) {
          channel.destroy(new Error('the agent sent a second hello [MPM_ERR_PROTOCOL]'));
          return;
        }
        hello = m;
        if (m.version !== PROTOCOL_VERSION) {
          refuse(new Error(`agent speaks protocol ${m.version}, we speak ${PROTOCOL_VERSION}`));
          return;
        }
        if (m.authRequired && !secret) {
          refuse(
            new Error(
              'the agent requires a shared secret: set MPMAKE_SECRET_FILE or --mp-secret-file',
            ),
          );
          return;
        }
        if (options.expectNodeId !== undefined && m.nodeId !== options.expectNodeId) {
          refuse(
            new AgentAuthError(
              `the agent at ${spec.address} now says it is ${JSON.stringify(m.nodeId)}, ` +
                `not ${JSON.stringify(options.expectNodeId)}: refusing it (a relay to another ` +
                'node, or another agent on that port) [MPM_ERR_AGENT_AUTH]',
            ),
          );
          return;
        }
        const mismatch = mungeMismatch(spec, m, munge);
        if (mismatch !== undefined) {
          refuse(mismatch);
          return;
        }
        const made = authFor(secret, m, socket, options.client, munge !== undefined);
        binding = made.binding;
        if (munge === undefined || binding === undefined) {
          channel.send(made.auth);
          on.authSent?.();
          return;
        }
        void clientCredential(binding, channelBinding(socket), munge).then(
          (credential) => {
            if (channel.isClosed) return;
            channel.send({ ...made.auth, munge: credential });
            on.authSent?.();
          },
          (err: Error) => refuse(err),
        );
        return;
      }
      case 'welcome':
        if (!hello) {
          channel.destroy(new Error('the agent sent welcome before hello [MPM_ERR_PROTOCOL]'));
          return;
        }
        // Nothing of the build (jobs, environments, probes) goes to an
        // agent that cannot prove it holds the secret, for this handshake.
        if (
          m.nodeId !== hello.nodeId ||
          (secret && binding && !verifyAgentProof(secret, binding, m.proof))
        ) {
          refuse(
            new AgentAuthError(
              "the agent did not prove that it holds the cluster's secret: it is not one of " +
                'ours, or runs without --secret-file [MPM_ERR_AGENT_AUTH]',
            ),
          );
          return;
        }
        if (munge === undefined || binding === undefined) {
          becomeReady(m);
          return;
        }
        // Nothing of the build goes to an agent that cannot show a credential
        // from this cluster's MUNGE key, made by root for this handshake.
        held = [];
        void agentCredentialProblem(m.munge, binding, channelBinding(socket), munge).then(
          (problem) => {
            if (channel.isClosed) return;
            if (problem === undefined) becomeReady(m);
            else refuse(problem);
          },
        );
        return;
      case 'error': {
        // A handshake the agent timed out is load, not identity: tried again (backoff).
        if (REFUSALS.has(m.code) && m.message !== AUTH_TIME_LIMIT) refused = true;
        // A plain refusal of a proof is a wrong secret; a bound one that fails
        // for the endpoint (a relay) says so itself.
        const wrongSecret =
          m.code === 'MPM_ERR_AUTH' &&
          hello !== undefined &&
          secret &&
          m.message === 'authentication failed';
        channel.destroy(
          new Error(wrongSecret ? secretRefused(options.secretFrom) : `${m.message} [${m.code}]`),
        );
        return;
      }
      default:
        channel.destroy(new Error(`the agent sent ${m.type} before welcome [MPM_ERR_PROTOCOL]`));
    }
  });
  channel.on('close', (err) => {
    clearTimeout(timer);
    if (tlsPending || (err && !authed && isTlsError(err))) {
      // Another secret, TLS on one side only, or a certificate: trying again will not help.
      refused = true;
      err = new TlsError(tlsFailed(err), { cause: err });
    }
    if (!authed && !hello && !tls) {
      // Not an agent's first frame, or a close without a word.
      if (err instanceof FrameTooLargeError) {
        refused = true;
        err = new Error(notAnAgent(lengthAsText(err.length)));
      } else if (err instanceof ProtocolError) {
        refused = true;
        err = new Error(notAnAgent(undefined));
      } else if (!err && connected) err = new Error(CLOSED_BEFORE_HELLO);
    }
    on.closed(err, { authed, refused });
  });
  return { channel };
}
