/**
 * The coordinator <-> agent wire messages: a closed union tagged by `type`.
 * Every message travels as one frame (see frame-codec.ts). Byte payloads are
 * Uint8Array (msgpack bin), never strings, so output stays binary-safe.
 *
 * Each message is ONE schema (TypeBox): it gives the TypeScript type
 * (`Static`) and the runtime check that every decoded frame passes before
 * any code touches it (`checkClientMessage`, `checkAgentMessage`), generated
 * ahead of time into message-checks.generated.ts so that checking loads no
 * TypeBox. To add a field, add it to the schema and run `make
 * message-checks`: the type and the check follow. Unknown fields are allowed (and ignored), so an older
 * peer accepts a newer one's optional additions; nothing reads them.
 */

import { Type, type Static } from '@sinclair/typebox';
import { MAX_NONCE_BYTES } from './auth.js';
import { MAX_CREDENTIAL_CHARS } from './munge.js';
import { REFUSAL_KINDS } from './refusal.js';
import { MAX_FAIR_USERS, MAX_FILES_SEEN, PROTOCOL_VERSION } from './wire-limits.js';

export { MAX_FILES_SEEN, PROTOCOL_VERSION };
// The checks, generated from these schemas (message-check.ts): re-exported here.
export { checkAgentMessage, checkClientMessage } from './message-check.js';

// ---- Building blocks -------------------------------------------------------

/** Why an agent refused a job (refusal.ts). */
const RefusalKindSchema = Type.Union(REFUSAL_KINDS.map((k) => Type.Literal(k)));

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** A job, request or probe id: a non-negative integer a Map key holds exactly. */
const Id = Type.Integer({ minimum: 0, maximum: MAX_SAFE });
/** A count or size (slots, bytes, ms). */
const Count = Type.Integer({ minimum: 0, maximum: MAX_SAFE });
/** Any integer that stays exact (ping sequence numbers may be negative). */
const SafeInt = Type.Integer({ minimum: -MAX_SAFE, maximum: MAX_SAFE });
/** A finite number (NaN and the infinities are refused). */
const Num = Type.Number();
/** A name shown to people (user, host, node id): bounded, so logs stay short. */
const Name = Type.String({ maxLength: 1024 });
/** An HMAC proof (32 bytes today; empty when no secret is set). */
const Proof = Type.Uint8Array({ maxByteLength: 64 });
/** A MUNGE credential (text; a real one is ~200 characters). */
const Credential = Type.String({ minLength: 1, maxLength: MAX_CREDENTIAL_CHARS });
/** An error code such as MPM_ERR_AUTH. */
const Code = Type.String({ maxLength: 64 });

/**
 * Text as the client's make had it: a string when valid UTF-8, else raw
 * bytes (a Latin-1 file name in a recipe line must reach the node intact).
 */
const WireTextSchema = Type.Union([Type.String(), Type.Uint8Array()]);
export type WireText = Static<typeof WireTextSchema>;

/** Terminal facts of the client's make, when its output is a terminal. */
const TtySizeSchema = Type.Object({
  cols: Type.Integer({ minimum: 1, maximum: 65535 }),
  rows: Type.Integer({ minimum: 1, maximum: 65535 }),
});
export type TtySize = Static<typeof TtySizeSchema>;

/**
 * What one machine saw of a file on the shared file system: absent, or its
 * size, mtime (seconds and nanoseconds) and inode number (decimal text: 64
 * bits do not fit a double).
 */
const FileSeenSchema = Type.Object({
  path: Type.String(),
  absent: Type.Optional(Type.Boolean()),
  size: Type.Optional(Count),
  mtimeS: Type.Optional(SafeInt),
  mtimeNs: Type.Optional(Type.Integer({ minimum: 0, maximum: 999_999_999 })),
  ino: Type.Optional(Type.String({ maxLength: 24 })),
});
export type FileSeen = Static<typeof FileSeenSchema>;
const FileList = Type.Array(FileSeenSchema, { maxItems: MAX_FILES_SEEN });

/** Revalidation of a job's inputs on its node, before it started. */
const InputWaitSchema = Type.Object({
  /** How long until the node saw every input as its writer did. */
  lagMs: Num,
  retries: Count,
  /** Inputs still different when the wait bound passed. */
  stale: Type.Array(Type.String(), { maxItems: MAX_FILES_SEEN }),
});
export type InputWait = Static<typeof InputWaitSchema>;

const StreamIdSchema = Type.Union([Type.Literal(1), Type.Literal(2)]);
export type StreamId = Static<typeof StreamIdSchema>;

// ---- Agent -> client -------------------------------------------------------

/** First message on a connection, agent -> client. Reveals nothing else. */
const HelloSchema = Type.Object({
  type: Type.Literal('hello'),
  version: SafeInt,
  /** Random bytes the client must sign with the shared secret. */
  challenge: Type.Uint8Array({ minByteLength: 1, maxByteLength: MAX_NONCE_BYTES }),
  /** Whether the agent has a shared secret configured. */
  authRequired: Type.Boolean(),
  /** The agent's name (its welcome's nodeId): both proofs cover it. */
  nodeId: Name,
  /** The agent authenticates clients by MUNGE credential (`--auth munge`). */
  munge: Type.Optional(Type.Boolean()),
});
export type HelloMessage = Static<typeof HelloSchema>;

/** Agent -> client after a successful auth: node facts. */
const WelcomeSchema = Type.Object({
  type: Type.Literal('welcome'),
  /** The agent's name (`--name`; default host name and listen address). */
  nodeId: Name,
  /**
   * Random per agent process: one instance reached under two addresses is
   * one node; two instances with one name are told apart.
   */
  instance: Name,
  hostname: Name,
  agentVersion: Name,
  slots: Count,
  cpus: Count,
  /** Agent wall clock, ms since epoch, when sent. */
  clockMs: Num,
  /** proveAgent(secret, binding) (auth.ts): present when the agent has a secret. */
  proof: Type.Optional(Proof),
  /** With --auth munge: the agent's own MUNGE credential over agentPayload(binding) (munge.ts). */
  munge: Type.Optional(Credential),
});
export type WelcomeMessage = Static<typeof WelcomeSchema>;

/** Agent -> client, at least once a second and on every change. */
const LoadSchema = Type.Object({
  type: Type.Literal('load'),
  slots: Count,
  running: Count,
  queued: Count,
  loadavg1: Num,
  cpus: Count,
  freeMemBytes: Num,
  clockMs: Num,
  /**
   * The queue as the receiving client's user sees it (the agent serves
   * users round-robin): that user's running and waiting jobs here, and each
   * other user's waiting jobs, largest first. Absent from older agents.
   */
  mineRunning: Type.Optional(Count),
  mineQueued: Type.Optional(Count),
  others: Type.Optional(Type.Array(Count, { maxItems: MAX_FAIR_USERS })),
});
export type LoadMessage = Static<typeof LoadSchema>;

/** Agent -> client: output of a job, in order per stream. */
const DataSchema = Type.Object({
  type: Type.Literal('data'),
  id: Id,
  stream: StreamIdSchema,
  bytes: Type.Uint8Array(),
});
export type DataMessage = Static<typeof DataSchema>;

/** Agent -> client: job `id` ended; exactly one of code/signal is set. */
const ExitSchema = Type.Object({
  type: Type.Literal('exit'),
  id: Id,
  code: Type.Union([SafeInt, Type.Null()]),
  signal: Type.Union([Name, Type.Null()]),
  /** Wall time the job ran on the node, and how long it waited in queue. */
  runMs: Num,
  queuedMs: Num,
  /**
   * User + system CPU time of the job and the children it waited for
   * (wait4's rusage), ms; absent where the node cannot tell (pty jobs,
   * jobs run as another user). Placement learns from it (command-times.ts).
   */
  cpuMs: Type.Optional(Type.Number({ minimum: 0 })),
  /** What the node saw of the job's `produces` after its processes exited. */
  seen: Type.Optional(FileList),
  /** How the job's `inputs` were revalidated before it started. */
  inputWait: Type.Optional(InputWaitSchema),
});
export type ExitMessage = Static<typeof ExitSchema>;

/** Agent -> client: the answer to a probe. */
const ProbeResultSchema = Type.Object({
  type: Type.Literal('probe-result'),
  id: Id,
  ok: Type.Boolean(),
  reason: Type.String(),
});
export type ProbeResultMessage = Static<typeof ProbeResultSchema>;

const PongSchema = Type.Object({
  type: Type.Literal('pong'),
  seq: SafeInt,
  clockMs: Num,
});
export type PongMessage = Static<typeof PongSchema>;

/** One connected client in a status reply, with its jobs on this node. */
const StatusClientSchema = Type.Object({
  user: Name,
  host: Name,
  pid: Count,
  build: Name,
  running: Count,
  queued: Count,
});
export type StatusClient = Static<typeof StatusClientSchema>;

/** One job in a status reply. */
const StatusJobSchema = Type.Object({
  /** The `build` of the client that sent it. */
  build: Name,
  /** What it runs: the shell line, or the argv joined; at most 200 characters. */
  command: Type.String(),
  cwd: Type.String(),
  /** Agent clock when it started; null while it waits in the queue. */
  startedAtMs: Type.Union([Num, Type.Null()]),
});
export type StatusJob = Static<typeof StatusJobSchema>;

/**
 * One user's jobs on this node in a status reply: whose share of the fair
 * queue they take (the agent serves users round-robin).
 */
const StatusUserSchema = Type.Object({
  /** As the agent tells users apart: `user@host` as the client named itself, or a proven user. */
  user: Name,
  /** That user's connections with jobs here (each build is one). */
  builds: Count,
  running: Count,
  queued: Count,
});
export type StatusUser = Static<typeof StatusUserSchema>;

/** Agent -> client: the answer to a status-request (the asker is not listed). */
const StatusSchema = Type.Object({
  type: Type.Literal('status'),
  id: Id,
  clients: Type.Array(StatusClientSchema),
  /** Users with jobs here, by name; absent from agents before it was added. */
  users: Type.Optional(Type.Array(StatusUserSchema)),
  /** Running jobs first, then queued ones, oldest first; capped. */
  jobs: Type.Array(StatusJobSchema),
  /** Jobs left out of `jobs` by the cap. */
  jobsLeftOut: Type.Optional(Count),
});
export type StatusMessage = Static<typeof StatusSchema>;

/**
 * Agent -> client: job `id` did not get a slot and waits in the node's queue
 * (`queued`), or has left the queue and runs now (`started`). Jobs that
 * start at once send neither.
 */
const JobStateSchema = Type.Object({
  type: Type.Union([Type.Literal('queued'), Type.Literal('started')]),
  id: Id,
});
export type JobStateMessage = Static<typeof JobStateSchema>;

/** Agent -> client: job `id` left the queue unstarted; the client places it again. */
const WithdrawnSchema = Type.Object({
  type: Type.Literal('withdrawn'),
  id: Id,
});
export type WithdrawnMessage = Static<typeof WithdrawnSchema>;

// ---- Either side -----------------------------------------------------------

/** Either side: something went wrong; `id` names the job when it concerns one. */
const ErrorSchema = Type.Object({
  type: Type.Literal('error'),
  code: Code,
  message: Type.String(),
  id: Type.Optional(Id),
  /** With MPM_ERR_JOB_REFUSED: why, as a code the client decides by. */
  refusal: Type.Optional(RefusalKindSchema),
});
export type ErrorMessage = Static<typeof ErrorSchema>;

// ---- Client -> agent -------------------------------------------------------

/**
 * Who is building: shown in status views and used for fair sharing; and
 * the client's heartbeat timeout, so the agent kills the jobs of a silent
 * client before the client runs them again elsewhere.
 */
const ClientInfoSchema = Type.Object({
  user: Name,
  host: Name,
  pid: Count,
  build: Name,
  heartbeatTimeoutMs: Type.Optional(Num),
});

/** Client -> agent, answers hello. */
const AuthSchema = Type.Object({
  type: Type.Literal('auth'),
  version: SafeInt,
  /** proveClient(secret, binding) (auth.ts); empty when no secret. */
  proof: Proof,
  client: ClientInfoSchema,
  /**
   * Fresh random bytes (at most MAX_NONCE_BYTES) the agent must sign in its
   * welcome, so the client knows it talks to a holder of the secret.
   * Required when the agent has a secret.
   */
  nonce: Type.Optional(Type.Uint8Array({ minByteLength: 16, maxByteLength: MAX_NONCE_BYTES })),
  /**
   * The agent's `ADDRESS:PORT` as the client's socket sees it (endpointOf):
   * covered by both proofs; a plaintext agent refuses one that is not its
   * own (a relayed handshake). Required when the agent has a secret.
   */
  endpoint: Type.Optional(Type.String({ maxLength: 64 })),
  /**
   * For an agent with --auth munge: a MUNGE credential over
   * clientPayload(binding) (munge.ts); nonce and endpoint are then required.
   */
  munge: Type.Optional(Credential),
});
export type AuthMessage = Static<typeof AuthSchema>;

/** Client -> agent: run `argv` in `cwd`. argv[0] is the shell. */
const JobSchema = Type.Object({
  type: Type.Literal('job'),
  id: Id,
  argv: Type.Array(WireTextSchema, { minItems: 1 }),
  cwd: Type.String(),
  env: Type.Record(Type.String(), WireTextSchema),
  /** Any integer here: a value out of 0..0777 refuses the job (job-check.ts), not the connection. */
  umask: Type.Integer(),
  /** Present when the job must run under a pseudo-terminal. */
  tty: Type.Optional(TtySizeSchema),
  /**
   * The client's stdout and stderr are one file (a pipe, a terminal, -O's
   * temp file): give the job one pipe for both, so their order is kept.
   * Everything then arrives as stream 1.
   */
  mergeOutput: Type.Optional(Type.Boolean()),
  /**
   * Files the job is to write (make's `$@`): stat'ed once its processes
   * have exited, sent back in the exit's `seen`.
   */
  produces: Type.Optional(Type.Array(Type.String(), { maxItems: MAX_FILES_SEEN })),
  /**
   * Files it reads that another machine wrote in this build: before it
   * starts, wait (at most `fsWaitMs`) until this node sees them as listed.
   */
  inputs: Type.Optional(FileList),
  fsWaitMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000 })),
});
export type JobMessage = Static<typeof JobSchema>;

/** Client -> agent: `bytes` of job `id`'s output were consumed (flow control). */
const AckSchema = Type.Object({
  type: Type.Literal('ack'),
  id: Id,
  bytes: Count,
});
export type AckMessage = Static<typeof AckSchema>;

/** Client -> agent: stop job `id` (signal name, e.g. SIGINT; default SIGTERM). */
const CancelSchema = Type.Object({
  type: Type.Literal('cancel'),
  id: Id,
  signal: Type.Optional(Type.String({ maxLength: 32 })),
});
export type CancelMessage = Static<typeof CancelSchema>;

/**
 * Client -> agent: the client's terminal changed size (SIGWINCH) while job
 * `id` runs under a pty: the node resizes that pty (its processes get
 * SIGWINCH). Ignored for a job without a pty or one that has ended.
 */
const ResizeSchema = Type.Object({
  type: Type.Literal('resize'),
  id: Id,
  cols: TtySizeSchema.properties.cols,
  rows: TtySizeSchema.properties.rows,
});
export type ResizeMessage = Static<typeof ResizeSchema>;

/** Client -> agent: check that `path` holds `content` (shared file system). */
const ProbeSchema = Type.Object({
  type: Type.Literal('probe'),
  id: Id,
  path: Type.String(),
  content: Type.String(),
});
export type ProbeMessage = Static<typeof ProbeSchema>;

const PingSchema = Type.Object({
  type: Type.Literal('ping'),
  seq: SafeInt,
  /**
   * The client's monotonic clock when sent (ms, any origin): a ping with it
   * renews the client's job lease (see lib/protocol/lease.ts).
   */
  sentMs: Type.Optional(Num),
});
export type PingMessage = Static<typeof PingSchema>;

/** Client -> agent: who is connected and what runs here (`mpm status`, `mpm top`). */
const StatusRequestSchema = Type.Object({
  type: Type.Literal('status-request'),
  id: Id,
});
export type StatusRequestMessage = Static<typeof StatusRequestSchema>;

/**
 * Client -> agent: take job `id` back if it is still queued (another node
 * has a free slot). Answered by `withdrawn` if it was; ignored if it has
 * started (a `started` is then on its way).
 */
const WithdrawSchema = Type.Object({
  type: Type.Literal('withdraw'),
  id: Id,
});
export type WithdrawMessage = Static<typeof WithdrawSchema>;

// ---- The two directions ----------------------------------------------------

const AGENT_TO_CLIENT = [
  HelloSchema,
  JobStateSchema,
  WithdrawnSchema,
  WelcomeSchema,
  LoadSchema,
  DataSchema,
  ExitSchema,
  ProbeResultSchema,
  PongSchema,
  StatusSchema,
  ErrorSchema,
] as const;

const CLIENT_TO_AGENT = [
  AuthSchema,
  WithdrawSchema,
  JobSchema,
  AckSchema,
  CancelSchema,
  ResizeSchema,
  ProbeSchema,
  PingSchema,
  StatusRequestSchema,
  ErrorSchema,
] as const;

export type AgentToClient = Static<(typeof AGENT_TO_CLIENT)[number]>;
export type ClientToAgent = Static<(typeof CLIENT_TO_AGENT)[number]>;
export type Message = AgentToClient | ClientToAgent;

/** The schemas, for tools that generate or explore messages (the fuzzer). */
export const messageSchemas = { agentToClient: AGENT_TO_CLIENT, clientToAgent: CLIENT_TO_AGENT };
