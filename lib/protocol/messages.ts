/**
 * The coordinator <-> agent wire messages: a closed union tagged by `type`.
 * Every message travels as one frame (see frame-codec.ts). Byte payloads are
 * Uint8Array (msgpack bin), never strings, so output stays binary-safe.
 */

import { MAX_NONCE_BYTES } from './auth.js';

/** Protocol version; an agent refuses a client with another major. */
export const PROTOCOL_VERSION = 1;

/** First message on a connection, agent -> client. Reveals nothing else. */
export interface HelloMessage {
  type: 'hello';
  version: number;
  /** Random bytes the client must sign with the shared secret. */
  challenge: Uint8Array;
  /** Whether the agent has a shared secret configured. */
  authRequired: boolean;
}

/** Client -> agent, answers hello. */
export interface AuthMessage {
  type: 'auth';
  version: number;
  /** HMAC-SHA256(secret, "mpmake-auth-v1" || challenge); empty when no secret. */
  proof: Uint8Array;
  /**
   * Who is building: shown in status views and used for fair sharing; and
   * the client's heartbeat timeout, so the agent kills the jobs of a silent
   * client before the client runs them again elsewhere.
   */
  client: { user: string; host: string; pid: number; build: string; heartbeatTimeoutMs?: number };
  /**
   * Fresh random bytes (at most MAX_NONCE_BYTES) the agent must sign in its
   * welcome, so the client knows it talks to a holder of the secret.
   */
  nonce?: Uint8Array;
}

/** Agent -> client after a successful auth: node facts. */
export interface WelcomeMessage {
  type: 'welcome';
  /** The agent's name (`--name`; default host name and listen address). */
  nodeId: string;
  /**
   * Random per agent process: one instance reached under two addresses is
   * one node; two instances with one name are told apart.
   */
  instance: string;
  hostname: string;
  agentVersion: string;
  slots: number;
  cpus: number;
  /** Agent wall clock, ms since epoch, when sent. */
  clockMs: number;
  /** proveAgent(secret, challenge, auth.nonce): present when both are. */
  proof?: Uint8Array;
}

/** Agent -> client, at least once a second and on every change. */
export interface LoadMessage {
  type: 'load';
  slots: number;
  running: number;
  queued: number;
  loadavg1: number;
  cpus: number;
  freeMemBytes: number;
  clockMs: number;
}

/** Terminal facts of the client's make, when its output is a terminal. */
export interface TtySize {
  cols: number;
  rows: number;
}

/**
 * Text as the client's make had it: a string when valid UTF-8, else raw
 * bytes (a Latin-1 file name in a recipe line must reach the node intact).
 */
export type WireText = string | Uint8Array;

/** Client -> agent: run `argv` in `cwd`. argv[0] is the shell. */
export interface JobMessage {
  type: 'job';
  id: number;
  argv: WireText[];
  cwd: string;
  env: Record<string, WireText>;
  umask: number;
  /** Present when the job must run under a pseudo-terminal. */
  tty?: TtySize;
  /**
   * The client's stdout and stderr are one file (a pipe, a terminal, -O's
   * temp file): give the job one pipe for both, so their order is kept.
   * Everything then arrives as stream 1.
   */
  mergeOutput?: boolean;
}

export type StreamId = 1 | 2;

/** Agent -> client: output of a job, in order per stream. */
export interface DataMessage {
  type: 'data';
  id: number;
  stream: StreamId;
  bytes: Uint8Array;
}

/** Client -> agent: `bytes` of job `id`'s output were consumed (flow control). */
export interface AckMessage {
  type: 'ack';
  id: number;
  bytes: number;
}

/** Client -> agent: stop job `id` (signal name, e.g. SIGINT; default SIGTERM). */
export interface CancelMessage {
  type: 'cancel';
  id: number;
  signal?: string;
}

/** Agent -> client: job `id` ended; exactly one of code/signal is set. */
export interface ExitMessage {
  type: 'exit';
  id: number;
  code: number | null;
  signal: string | null;
  /** Wall time the job ran on the node, and how long it waited in queue. */
  runMs: number;
  queuedMs: number;
}

/** Client -> agent: check that `path` holds `content` (shared file system). */
export interface ProbeMessage {
  type: 'probe';
  id: number;
  path: string;
  content: string;
}

/** Agent -> client: the answer to a probe. */
export interface ProbeResultMessage {
  type: 'probe-result';
  id: number;
  ok: boolean;
  reason: string;
}

export interface PingMessage {
  type: 'ping';
  seq: number;
}

export interface PongMessage {
  type: 'pong';
  seq: number;
  clockMs: number;
}

/** Client -> agent: who is connected and what runs here (`mpm status`, `mpm top`). */
export interface StatusRequestMessage {
  type: 'status-request';
  id: number;
}

/** One connected client in a status reply, with its jobs on this node. */
export interface StatusClient {
  user: string;
  host: string;
  pid: number;
  build: string;
  running: number;
  queued: number;
}

/** One job in a status reply. */
export interface StatusJob {
  /** The `build` of the client that sent it. */
  build: string;
  /** What it runs: the shell line, or the argv joined; at most 200 characters. */
  command: string;
  cwd: string;
  /** Agent clock when it started; null while it waits in the queue. */
  startedAtMs: number | null;
}

/** Agent -> client: the answer to a status-request (the asker is not listed). */
export interface StatusMessage {
  type: 'status';
  id: number;
  clients: StatusClient[];
  /** Running jobs first, then queued ones, oldest first; capped. */
  jobs: StatusJob[];
  /** Jobs left out of `jobs` by the cap. */
  jobsLeftOut?: number;
}

/** Either side: something went wrong; `id` names the job when it concerns one. */
export interface ErrorMessage {
  type: 'error';
  code: string;
  message: string;
  id?: number;
}

/**
 * Agent -> client: job `id` did not get a slot and waits in the node's queue
 * (`queued`), or has left the queue and runs now (`started`). Jobs that
 * start at once send neither.
 */
export interface JobStateMessage {
  type: 'queued' | 'started';
  id: number;
}

/**
 * Client -> agent: take job `id` back if it is still queued (another node
 * has a free slot). Answered by `withdrawn` if it was; ignored if it has
 * started (a `started` is then on its way).
 */
export interface WithdrawMessage {
  type: 'withdraw';
  id: number;
}

/** Agent -> client: job `id` left the queue unstarted; the client places it again. */
export interface WithdrawnMessage {
  type: 'withdrawn';
  id: number;
}

export type AgentToClient =
  | HelloMessage
  | JobStateMessage
  | WithdrawnMessage
  | WelcomeMessage
  | LoadMessage
  | DataMessage
  | ExitMessage
  | ProbeResultMessage
  | PongMessage
  | StatusMessage
  | ErrorMessage;

export type ClientToAgent =
  | AuthMessage
  | WithdrawMessage
  | JobMessage
  | AckMessage
  | CancelMessage
  | ProbeMessage
  | PingMessage
  | StatusRequestMessage
  | ErrorMessage;

export type Message = AgentToClient | ClientToAgent;

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => Number.isInteger(v);
const isStr = (v: unknown): v is string => typeof v === 'string';
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
const isText = (v: unknown): v is WireText => isStr(v) || isBytes(v);
const isTextArr = (v: unknown): v is WireText[] => Array.isArray(v) && v.every(isText);
const isTextRecord = (v: unknown): v is Record<string, WireText> =>
  isObj(v) && Object.values(v).every(isText);
const isStatusClient = (v: unknown): boolean =>
  isObj(v) &&
  isStr(v['user']) &&
  isStr(v['host']) &&
  isInt(v['pid']) &&
  isStr(v['build']) &&
  isInt(v['running']) &&
  isInt(v['queued']);
const isStatusJob = (v: unknown): boolean =>
  isObj(v) &&
  isStr(v['build']) &&
  isStr(v['command']) &&
  isStr(v['cwd']) &&
  (v['startedAtMs'] === null || typeof v['startedAtMs'] === 'number');

/**
 * Validates a decoded value as a message the agent accepts. Returns an
 * explanation when it is not one, so a hostile or broken client gets an
 * error frame naming what was wrong instead of crashing the agent.
 */
export function checkClientMessage(v: unknown): ClientToAgent | string {
  if (!isObj(v)) return 'message is not a map';
  switch (v['type']) {
    case 'auth':
      return isInt(v['version']) &&
        isBytes(v['proof']) &&
        isObj(v['client']) &&
        (v['nonce'] === undefined || (isBytes(v['nonce']) && v['nonce'].length <= MAX_NONCE_BYTES))
        ? (v as unknown as AuthMessage)
        : 'malformed auth';
    case 'job': {
      const tty = v['tty'];
      const ttyOk = tty === undefined || (isObj(tty) && isInt(tty['cols']) && isInt(tty['rows']));
      return isInt(v['id']) &&
        isTextArr(v['argv']) &&
        (v['argv'] as WireText[]).length > 0 &&
        isStr(v['cwd']) &&
        isTextRecord(v['env']) &&
        isInt(v['umask']) &&
        (v['mergeOutput'] === undefined || typeof v['mergeOutput'] === 'boolean') &&
        ttyOk
        ? (v as unknown as JobMessage)
        : 'malformed job';
    }
    case 'ack':
      return isInt(v['id']) && isInt(v['bytes']) ? (v as unknown as AckMessage) : 'malformed ack';
    case 'cancel':
      return isInt(v['id']) && (v['signal'] === undefined || isStr(v['signal']))
        ? (v as unknown as CancelMessage)
        : 'malformed cancel';
    case 'probe':
      return isInt(v['id']) && isStr(v['path']) && isStr(v['content'])
        ? (v as unknown as ProbeMessage)
        : 'malformed probe';
    case 'ping':
      return isInt(v['seq']) ? (v as unknown as PingMessage) : 'malformed ping';
    case 'withdraw':
      return isInt(v['id']) ? (v as unknown as WithdrawMessage) : 'malformed withdraw';
    case 'status-request':
      return isInt(v['id']) ? (v as unknown as StatusRequestMessage) : 'malformed status-request';
    case 'error':
      return isStr(v['code']) && isStr(v['message'])
        ? (v as unknown as ErrorMessage)
        : 'malformed error';
    default:
      return `unknown message type ${JSON.stringify(String(v['type'])).slice(0, 40)}`;
  }
}

/** Validates a decoded value as a message the client accepts. */
export function checkAgentMessage(v: unknown): AgentToClient | string {
  if (!isObj(v)) return 'message is not a map';
  switch (v['type']) {
    case 'hello':
      return isInt(v['version']) && isBytes(v['challenge'])
        ? (v as unknown as HelloMessage)
        : 'malformed hello';
    case 'welcome':
      return isStr(v['nodeId']) &&
        isStr(v['instance']) &&
        isInt(v['slots']) &&
        (v['proof'] === undefined || isBytes(v['proof']))
        ? (v as unknown as WelcomeMessage)
        : 'malformed welcome';
    case 'load':
      return isInt(v['slots']) && isInt(v['running']) && isInt(v['queued'])
        ? (v as unknown as LoadMessage)
        : 'malformed load';
    case 'data':
      return isInt(v['id']) && (v['stream'] === 1 || v['stream'] === 2) && isBytes(v['bytes'])
        ? (v as unknown as DataMessage)
        : 'malformed data';
    case 'exit':
      return isInt(v['id']) &&
        (v['code'] === null || isInt(v['code'])) &&
        (v['signal'] === null || isStr(v['signal']))
        ? (v as unknown as ExitMessage)
        : 'malformed exit';
    case 'probe-result':
      return isInt(v['id']) && typeof v['ok'] === 'boolean' && isStr(v['reason'])
        ? (v as unknown as ProbeResultMessage)
        : 'malformed probe-result';
    case 'pong':
      return isInt(v['seq']) ? (v as unknown as PongMessage) : 'malformed pong';
    case 'queued':
    case 'started':
      return isInt(v['id']) ? (v as unknown as JobStateMessage) : `malformed ${v['type']}`;
    case 'withdrawn':
      return isInt(v['id']) ? (v as unknown as WithdrawnMessage) : 'malformed withdrawn';
    case 'status':
      return isInt(v['id']) &&
        Array.isArray(v['clients']) &&
        v['clients'].every(isStatusClient) &&
        Array.isArray(v['jobs']) &&
        v['jobs'].every(isStatusJob) &&
        (v['jobsLeftOut'] === undefined || isInt(v['jobsLeftOut']))
        ? (v as unknown as StatusMessage)
        : 'malformed status';
    case 'error':
      return isStr(v['code']) && isStr(v['message'])
        ? (v as unknown as ErrorMessage)
        : 'malformed error';
    default:
      return `unknown message type ${JSON.stringify(String(v['type'])).slice(0, 40)}`;
  }
}
