import { EventEmitter } from 'node:events';
import type { FileSeen, InputWait, JobMessage, TtySize, WireText } from '../protocol/messages.js';
import {
  explain,
  fairView,
  pick,
  pickFirstFree,
  type Choice,
  type NodeSnapshot,
  type PlacementPolicy,
} from '../placement/placement.js';
import { tracer } from '../trace.js';
import type { HostSpec } from '../client/host-list.js';
import { NodeChannel, type NodeChannelOptions } from '../client/node-channel.js';
import { serverSkew, skewToServer, surelyBeyond } from './server-clock.js';
import { identify, qualifiedId, sameAgentLine, type SameAgent } from './node-identity.js';
import { ProbeFile } from './probe-file.js';
import { fenceProblem, runFence, type FenceOptions, type FenceOutcome } from './fence.js';
import { isLoadRefusal, type RefusalKind } from '../protocol/refusal.js';

const trace = tracer('placement');

/** Longest pause before a job refused for load is offered again (a slot freeing of ours wakes it sooner). */
const MAX_REFUSED_PAUSE_MS = 1000;

/** Lease lapses a job may suffer before it fails (see the job-error handler). */
const MAX_LAPSES = 3;

/** How long a node that went down is avoided after it comes back. */
const PENALTY_MS = 10_000;

export interface JobSpec {
  argv: WireText[];
  cwd: string;
  env: Record<string, WireText>;
  umask: number;
  tty?: TtySize;
  mergeOutput?: boolean;
  /** Files the node stats after the job (its targets); see JobMessage. */
  produces?: string[];
  /**
   * Files the job reads that were written in this build by another machine
   * than the node at `address` (asked again when the job moves or re-runs).
   */
  inputsFor?: (address: string) => FileSeen[];
  fsWaitMs?: number;
}

/** What the node saw of the files: the job's targets after it, its inputs before it. */
export interface FilesAtExit {
  /** The node's address (where the files were written). */
  address: string;
  seen?: FileSeen[];
  inputWait?: InputWait;
}

/** Where a job's results go (the shim connection, in mpmake). */
/** From the agent: how long a job waited in the node's queue, ran, and its CPU time when known. */
export interface JobTiming {
  queuedMs: number;
  runMs: number;
  cpuMs?: number;
}

export interface JobSink {
  /** Output; call `consumed` once the bytes are handed on (flow control). */
  data(stream: 1 | 2, bytes: Uint8Array, consumed: () => void): void;
  exit(
    code: number | null,
    signal: string | null,
    nodeId: string,
    timing: JobTiming,
    files?: FilesAtExit,
  ): void;
  /** The job could not run anywhere; `message` says why. */
  fail(code: string, message: string): void;
  /**
   * Its node was lost and no other can take it: run it on the client
   * instead, if allowed. Returns false when not (then `fail` follows).
   */
  runLocally(reason: string): boolean;
}

export interface JobHandle {
  cancel(signal: string): void;
  /** The client's terminal changed size: a job under a pty follows (ignored otherwise, or once it ended). */
  resize(cols: number, rows: number): void;
}

export interface LeftOut {
  address: string;
  reason: string;
}

/** A job run again because its node was lost while running it. */
export interface Rerun {
  command: string;
  from: string;
  /** The node it ran on next, or 'local'. */
  to: string;
  reason: string;
}

/** A node fenced (--mp-fence) after it was lost with jobs running. */
export interface Fenced {
  node: string;
  address: string;
  /** Why it was lost. */
  reason: string;
  ok: boolean;
  ms: number;
  /** `exited 0`, `exited 3`, `timed out after 60000 ms`… */
  status: string;
}

export interface ClusterStats {
  /** Jobs that ended on a node (each counted once, where it finally ran). */
  remote: number;
  /** Jobs given up on (sink.fail): never ran anywhere to the end. */
  gaveUp: number;
  retried: number;
  /** Refusals by agents (queue limit, byte budget, root check), each placed again. */
  refused: number;
  /** The same, by the refusal's kind (refusal.ts). */
  refusedByKind: Partial<Record<RefusalKind, number>>;
  perNode: Map<string, number>;
  reruns: Rerun[];
  /** Queued jobs taken back from a busy node and placed on one with a free slot. */
  moved: number;
  fenced: Fenced[];
}

interface RunningJob {
  id: number;
  spec: JobSpec;
  sink: JobSink;
  node: NodeChannel;
  attempts: number;
  cancelled: string | undefined;
  /** Waiting in its node's queue (the agent said so). */
  queued: boolean;
  /** A withdraw was sent and not yet answered. */
  withdrawing: boolean;
  sentAtMs: number;
  /** Times a node killed it because our heartbeats came late (not counted as attempts). */
  lapses: number;
  /** Nodes that refused it for a reason that will not change there: never sent there again. */
  barredBy: Set<NodeChannel>;
  /** Nodes that refused it for load since it last waited for a slot. */
  fullAt: Set<NodeChannel>;
  /** Load refusals so far (the pause before the next offer grows with them). */
  refusals: number;
}

export interface ClusterOptions extends NodeChannelOptions {
  placement: PlacementPolicy;
  /** --mp-explain: say, for each job, the candidates and their scores. */
  explain: ((line: string) => void) | undefined;
  /** Largest tolerated clock difference between client and node. */
  maxClockSkewMs: number;
  /** How long to wait for the start checks of one node. */
  checkTimeoutMs: number;
  /** --mp-fence: cut a lost node off before its jobs run again elsewhere. */
  fence?: FenceOptions | undefined;
  /**
   * Under --mp-no-fallback: how long a job with no node to run on (its own
   * lost) waits for one that may still come; 0 or unset: it fails at once.
   */
  nodeWaitMs?: number;
}

/**
 * The agents of one build: their channels, the start checks, placement and
 * the routing of every job's messages. A job lost with its node (the
 * connection dropped) runs again elsewhere, once; a job that ran and failed
 * is a result and is never retried.
 */
export interface ClusterEvents {
  /** The slots taking jobs changed (a node joined, came back or went down). */
  capacity: [number];
  /** A node's connection changed state (it may have come, gone, or been refused for good). */
  nodes: [];
}

export class Cluster extends EventEmitter<ClusterEvents> {
  readonly nodes: NodeChannel[];
  readonly localSlots: number;
  readonly leftOut: LeftOut[] = [];
  /** Addresses that reached an agent already listed under another address. */
  readonly sameAgent: SameAgent[] = [];
  readonly stats: ClusterStats = {
    remote: 0,
    gaveUp: 0,
    retried: 0,
    refused: 0,
    refusedByKind: {},
    perNode: new Map(),
    reruns: [],
    moved: 0,
    fenced: [],
  };
  private readonly jobs = new Map<number, RunningJob>();
  private nextId = 1;
  private rotate = 0;
  private probes: ProbeFile = new ProbeFile(undefined);
  /**
   * The file server's clock minus ours, ms, as a range: from the mtime it
   * stamped on the probe file (whole seconds on sftp) and when we wrote it.
   */
  serverSkewMs: { lo: number; hi: number } | undefined;
  /** Nodes that passed the checks on their current connection. */
  private readonly checked = new Set<NodeChannel>();
  /** Nodes left out for good (failed a check, or another address of a listed agent). */
  private readonly bad = new Set<NodeChannel>();
  private started = false;
  /** Nodes that failed recently: used only when nothing else is. */
  private readonly penalizedUntil = new Map<NodeChannel, number>();
  /** Lost jobs waiting for their lease on the lost node to lapse. */
  private readonly waiting = new Set<NodeJS.Timeout>();
  /** Lost nodes being fenced or fenced (once each): out of the build for good. */
  private readonly fences = new Map<NodeChannel, Promise<FenceOutcome>>();
  private closed = false;
  /** Jobs refused for load, waiting for a slot, oldest first, with their pause. */
  private readonly parked = new Map<RunningJob, NodeJS.Timeout>();
  /** Jobs with no node to run on, waiting for one that may still come (awaitNode). */
  private readonly awaitingNode = new Map<RunningJob, NodeJS.Timeout>();

  constructor(
    specs: readonly HostSpec[],
    private readonly options: ClusterOptions,
  ) {
    super();
    this.nodes = specs.filter((s) => !s.local).map((s) => new NodeChannel(s, options));
    this.localSlots = specs.filter((s) => s.local).reduce((a, s) => a + (s.slots ?? 0), 0);
    for (const node of this.nodes) this.wire(node);
  }

  /**
   * Connects to every agent and runs the start checks: the node must see
   * `probeDir` (a file with random content written here, read there) and its
   * clock must be within `maxClockSkewMs`. Nodes failing either are left out.
   */
  async start(probeDir: string | undefined): Promise<void> {
    this.probes = new ProbeFile(probeDir);
    // Held through the start checks; its server-stamped mtime gives the file server's clock.
    const first = this.probes.acquire();
    if (first) this.serverSkewMs = serverSkew(first.path, first.before, first.after);
    await Promise.all(this.nodes.map((n) => n.start()));
    this.identifyAll();
    await Promise.all(
      this.nodes.map(async (n) => {
        if (this.bad.has(n)) return;
        if (n.state === 'ready') await this.admit(n);
        else {
          // Unreachable now: left out of the start, but the channel keeps
          // trying, and the node joins the build when it comes up.
          this.leftOut.push({ address: n.address, reason: n.reason ?? 'not reachable' });
        }
      }),
    );
    if (first) this.probes.release();
    this.started = true;
  }

  /**
   * Runs the checks on a node that just became ready (at start, or when it
   * comes back): it must see the probe file and keep its clock in step.
   * Passing, it takes jobs; failing, it is left out for the whole build.
   */
  private async admit(node: NodeChannel): Promise<void> {
    if (this.fences.has(node)) return; // fenced: cut off from the files, whatever it says
    if (this.started && !this.identifyLate(node)) return;
    const reason = await this.check(node);
    if (reason === undefined) {
      this.checked.add(node);
      this.emit('capacity', this.totalSlots);
      this.resumeAwaiting();
      if (this.started)
        process.stderr.write(`mpmake: ${node.nodeId} (${node.address}) joined the build\n`);
    } else if (node.state === 'ready') {
      this.bad.add(node);
      this.leftOut.push({ address: node.address, reason });
      if (this.started) process.stderr.write(`mpmake: leaving out ${node.address}: ${reason}\n`);
      node.close();
    }
  }

  /**
   * At start: one node per agent instance (later addresses of one are
   * closed and said once), ids told apart where agents share a name.
   */
  private identifyAll(): void {
    const ready = this.nodes.filter((n) => n.state === 'ready' && n.instance !== undefined);
    const { ids, aliases } = identify(
      ready.map((n) => ({ address: n.address, name: n.agentName!, instance: n.instance! })),
    );
    for (const n of ready) n.nodeId = ids.get(n.address) ?? n.nodeId;
    for (const a of aliases)
      this.dropAlias(
        this.nodes.find((n) => n.address === a.address)!,
        a,
      );
  }

  /** A node that came up during the build: false when it is an agent already in use. */
  private identifyLate(node: NodeChannel): boolean {
    const others = this.usable.filter((n) => n !== node && n.instance !== undefined);
    const same = others.find((n) => n.instance === node.instance);
    if (same) {
      this.dropAlias(node, { address: node.address, sameAs: same.address, id: same.nodeId });
      return false;
    }
    const taken = others.some((n) => n.nodeId === node.nodeId || n.agentName === node.agentName);
    if (taken && node.agentName !== undefined)
      node.nodeId = qualifiedId(node.agentName, node.address);
    return true;
  }

  private dropAlias(node: NodeChannel, alias: SameAgent): void {
    this.bad.add(node);
    this.sameAgent.push(alias);
    process.stderr.write(`${sameAgentLine(alias)}\n`);
    node.close();
  }

  private check(node: NodeChannel): Promise<string | undefined> {
    const probe = this.probes.acquire();
    return new Promise<string | undefined>((resolve) => {
      // Judged after what has already come is read (a starved client runs
      // its due timers before it reads its sockets; see agent-dial.ts).
      const timer = setTimeout(
        () =>
          setImmediate(() =>
            done(`no answer to the start checks within ${this.options.checkTimeoutMs} ms`),
          ),
        this.options.checkTimeoutMs,
      );
      let over = false;
      const done = (r: string | undefined): void => {
        if (over) return;
        over = true;
        if (probe) this.probes.release();
        clearTimeout(timer);
        node.off('probe-result', onProbe);
        node.off('state', onState);
        resolve(r);
      };
      const onState = (): void => done(node.reason ?? 'connection lost during the start checks');
      const onProbe = (m: { ok: boolean; reason: string }): void => {
        if (!m.ok) return done(m.reason);
        // Only a difference past the limit however slow the pong was: a
        // loaded node answering late is not a skewed one.
        const skew = surelyBeyond(node.clockSkewRange, this.options.maxClockSkewMs);
        if (skew !== undefined) {
          return done(
            `its clock differs from ours by ${skew} ms (limit ${this.options.maxClockSkewMs}); make compares timestamps, so keep clocks in step (NTP)`,
          );
        }
        const server = this.serverSkewMs;
        if (server) {
          const vsServer = skewToServer(node.clockSkewRange, server, this.options.maxClockSkewMs);
          if (vsServer !== undefined) {
            return done(
              `its clock differs from the file server's by ${vsServer} ms or more (the time the shared file system stamps on files, seen on the probe file; limit ${this.options.maxClockSkewMs}); make compares those times with files a job stamps, so keep the nodes' and the file server's clocks in step (NTP)`,
            );
          }
        }
        done(undefined);
      };
      node.on('state', onState);
      node.on('probe-result', onProbe);
      node.ping();
      // The probe goes after the ping, so its answer comes after the pong.
      if (probe) node.send({ type: 'probe', id: 1, path: probe.path, content: probe.content });
      else setImmediate(() => onProbe({ ok: true, reason: '' }));
    });
  }

  /** Nodes not left out for good (they may be down for now). */
  get usable(): NodeChannel[] {
    return this.nodes.filter((n) => !this.bad.has(n));
  }

  /**
   * Nodes not taking jobs now that may later: connecting, in their start
   * checks, or down and retrying with backoff; not those refused for good
   * (wrong secret, bad credential, not an agent), left out, or closed.
   */
  get coming(): NodeChannel[] {
    const ready = new Set(this.readyNodes);
    return this.usable.filter((n) => !ready.has(n) && !n.refused && n.state !== 'closed');
  }

  /** Nodes taking jobs now: connected and checked on this connection. */
  get readyNodes(): NodeChannel[] {
    return this.nodes.filter((n) => n.state === 'ready' && this.checked.has(n));
  }

  /** Total slots of the nodes taking jobs now plus the client's own. */
  get totalSlots(): number {
    return this.readyNodes.reduce((a, n) => a + n.slots, 0) + this.localSlots;
  }

  private snapshot(): NodeSnapshot[] {
    const now = Date.now();
    const inFlight = new Map<NodeChannel, number>();
    for (const j of this.jobs.values()) inFlight.set(j.node, (inFlight.get(j.node) ?? 0) + 1);
    const snaps: NodeSnapshot[] = this.readyNodes.map((n) => ({
      id: n.address,
      local: false,
      slots: n.slots,
      running: n.lastLoad?.running ?? 0,
      queued: n.lastLoad?.queued ?? 0,
      inFlight: inFlight.get(n) ?? 0,
      ...fairView(n.lastLoad),
      loadavg1: n.lastLoad?.loadavg1 ?? 0,
      cpus: n.lastLoad?.cpus ?? n.cpus,
      reportAgeMs: n.lastLoad ? now - n.lastLoadAtMs : Infinity,
      penalized: (this.penalizedUntil.get(n) ?? 0) > now,
    }));
    if (this.localSlots > 0) {
      snaps.push({
        id: 'local',
        local: true,
        slots: this.localSlots,
        running: 0,
        queued: 0,
        inFlight: 0,
        loadavg1: 0,
        cpus: 1,
        reportAgeMs: 0,
        penalized: false,
      });
    }
    return snaps;
  }

  /** Per node in use: id, slots and last load report (for progress views). */
  nodeLoads(): Array<{
    id: string;
    slots: number;
    running: number;
    queued: number;
    loadavg1: number;
  }> {
    return this.usable.map((n) => ({
      id: n.nodeId,
      slots: n.slots,
      running: n.lastLoad?.running ?? 0,
      queued: n.lastLoad?.queued ?? 0,
      loadavg1: n.lastLoad?.loadavg1 ?? 0,
    }));
  }

  /** The agent's own id for a node address (what reports and traces show). */
  nodeIdOf(address: string): string {
    return this.nodes.find((n) => n.address === address)?.nodeId ?? address;
  }

  choose(what = '', except?: NodeChannel, avoid?: ReadonlySet<NodeChannel>): Choice {
    const all = this.snapshot();
    const shunned = new Set([...(avoid ?? []), ...(except ? [except] : [])].map((n) => n.address));
    const others = shunned.size ? all.filter((n) => !shunned.has(n.id)) : all;
    const snaps = others.length ? others : all;
    const choice =
      this.options.placement === 'first-free' ? pickFirstFree(snaps) : pick(snaps, this.rotate++);
    if (this.options.explain) {
      const to = choice.kind === 'node' ? this.nodeIdOf(choice.id) : choice.kind;
      this.options.explain(
        `mpmake: place ${JSON.stringify(what.slice(0, 60))} -> ${to}; ${explain(snaps)}`,
      );
    }
    trace(
      `choice ${choice.kind === 'node' ? choice.id : choice.kind} among ${snaps
        .map((s) => `${s.id}[${s.running}+${s.queued}/${s.slots} mine ${s.inFlight}]`)
        .join(' ')}`,
    );
    return choice;
  }

  /** Sends a job to `nodeId` (from `choose`). */
  run(nodeId: string, spec: JobSpec, sink: JobSink): JobHandle {
    const node = this.readyNodes.find((n) => n.address === nodeId);
    const job: RunningJob = {
      id: this.nextId++,
      spec,
      sink,
      node: node!,
      attempts: 0,
      cancelled: undefined,
      queued: false,
      withdrawing: false,
      sentAtMs: 0,
      lapses: 0,
      barredBy: new Set(),
      fullAt: new Set(),
      refusals: 0,
    };
    this.dispatch(job, node);
    return {
      cancel: (signal) => {
        if (job.cancelled) return;
        job.cancelled = signal;
        if (this.parked.has(job)) return this.offerAgain(job);
        if (this.awaitingNode.has(job)) {
          clearTimeout(this.awaitingNode.get(job));
          this.awaitingNode.delete(job);
          job.sink.exit(null, signal, job.node.nodeId, { queuedMs: 0, runMs: 0 });
          return;
        }
        if (this.jobs.has(job.id)) job.node.send({ type: 'cancel', id: job.id, signal });
      },
      resize: (cols, rows) => {
        if (!job.spec.tty || job.cancelled) return;
        job.spec.tty = { cols, rows }; // a re-run elsewhere starts at the new size
        if (this.jobs.has(job.id)) job.node.send({ type: 'resize', id: job.id, cols, rows });
      },
    };
  }

  private dispatch(job: RunningJob, node: NodeChannel | undefined): void {
    if (!node) {
      if (job.sink.runLocally('no agent is reachable')) return;
      if (this.awaitNode(job)) return;
      this.giveUp(job, 'MPM_ERR_AGENT_LOST', 'no agent is reachable to run this job');
      return;
    }
    job.node = node;
    job.attempts++;
    job.queued = false;
    job.withdrawing = false;
    job.sentAtMs = Date.now();
    this.jobs.set(job.id, job);
    const { inputsFor, ...spec } = job.spec;
    const msg: JobMessage = { type: 'job', id: job.id, ...spec };
    const inputs = inputsFor?.(node.address);
    if (inputs && inputs.length > 0) msg.inputs = inputs;
    node.send(msg);
  }

  /** The job could not run anywhere: counted once, then its sink says why. */
  private giveUp(job: RunningJob, code: string, message: string): void {
    this.stats.gaveUp++;
    job.sink.fail(code, message);
  }

  private wire(node: NodeChannel): void {
    node.on('data', (m) => {
      const job = this.jobs.get(m.id);
      if (!job || job.node !== node) return;
      job.sink.data(m.stream, m.bytes, () =>
        node.send({ type: 'ack', id: m.id, bytes: m.bytes.length }),
      );
    });
    node.on('exit', (m) => {
      const job = this.jobs.get(m.id);
      if (!job || job.node !== node) return;
      this.jobs.delete(m.id);
      this.wakeParked(node);
      this.stats.remote++;
      this.stats.perNode.set(node.nodeId, (this.stats.perNode.get(node.nodeId) ?? 0) + 1);
      const files: FilesAtExit = { address: node.address };
      if (m.seen) files.seen = m.seen;
      if (m.inputWait) files.inputWait = m.inputWait;
      job.sink.exit(
        m.code,
        m.signal,
        node.nodeId,
        {
          queuedMs: m.queuedMs ?? 0,
          runMs: m.runMs ?? 0,
          ...(m.cpuMs !== undefined ? { cpuMs: m.cpuMs } : {}),
        },
        files,
      );
    });
    node.on('job-queued', (id, queued) => {
      const job = this.jobs.get(id);
      if (job && job.node === node) job.queued = queued;
      if (queued) this.rebalance();
    });
    node.on('withdrawn', (id) => {
      const job = this.jobs.get(id);
      if (!job || job.node !== node) return;
      this.jobs.delete(id);
      this.stats.moved++;
      job.attempts--; // moving is not a fault
      // Anywhere but back into the queue it just left.
      const next = this.nextNode(job, node);
      trace(`moved job ${id} from ${node.nodeId} to ${next?.nodeId}`);
      this.dispatch(job, next ?? node);
    });
    node.on('load', () => this.rebalance());
    node.on('job-error', (id, code, message, refusal) => {
      const job = this.jobs.get(id);
      if (!job || job.node !== node) return;
      this.jobs.delete(id);
      if (code === 'MPM_ERR_LEASE_LAPSED' && !job.cancelled && job.lapses < MAX_LAPSES) {
        // The node killed it (our heartbeats came late, or we were frozen):
        // not the job's fault, and it is certainly dead there.
        job.lapses++;
        job.attempts--;
        this.rerun(job, node, 'its lease lapsed there', false);
        return;
      }
      if (code === 'MPM_ERR_JOB_REFUSED' && !job.cancelled) {
        // A refusal without a kind (not from this protocol) will not change there either.
        this.placeRefused(job, node, refusal ?? 'invalid-job', message);
        return;
      }
      this.giveUp(job, code, `${node.nodeId}: ${message}`);
    });
    node.on('state', (state, reason) => {
      setImmediate(() => this.emit('nodes'));
      if (state === 'ready' && this.started) void this.admit(node);
      if (state !== 'down' && state !== 'closed') return;
      if (this.checked.delete(node)) this.emit('capacity', this.totalSlots);
      if (state === 'down') this.penalizedUntil.set(node, Date.now() + PENALTY_MS);
      for (const job of [...this.jobs.values()]) {
        if (job.node !== node) continue;
        this.jobs.delete(job.id);
        if (job.cancelled) {
          job.sink.exit(null, job.cancelled, node.nodeId, { queuedMs: 0, runMs: 0 });
        } else if (node.lostByFreeze && job.lapses < MAX_LAPSES) {
          // We were frozen: not an attempt the job used up. Nor a reason to
          // fence the node: it is fine, and its lease killed the job.
          job.lapses++;
          job.attempts--;
          this.rerun(job, node, reason ?? 'connection lost', true, false);
        } else if (job.attempts < 2) {
          this.rerun(job, node, reason ?? 'connection lost');
        } else {
          this.giveUp(
            job,
            'MPM_ERR_AGENT_LOST',
            `lost ${node.nodeId} twice while running this job`,
          );
        }
      }
      this.resumeAwaiting();
    });
  }

  /**
   * An agent refused a job: a placement decision, not a failure, made by
   * the refusal's kind, never by its words. The job goes to a node that has
   * not refused it. Failing that: refused for load (queue limit, byte
   * budget), it waits until a slot frees and is offered again; refused for
   * a reason that will not change there (root check, its directory, the
   * job itself), it is never sent to that node again and, with no node
   * left, runs on the client, or fails under --mp-no-fallback.
   */
  private placeRefused(
    job: RunningJob,
    node: NodeChannel,
    kind: RefusalKind,
    message: string,
  ): void {
    this.stats.refused++;
    this.stats.refusedByKind[kind] = (this.stats.refusedByKind[kind] ?? 0) + 1;
    job.attempts--; // a refusal is not a fault
    const load = isLoadRefusal(kind);
    (load ? job.fullAt : job.barredBy).add(node);
    trace(`job ${job.id}: ${node.nodeId} refused it (${kind}): ${message}`);
    const avoid = new Set([...job.barredBy, ...job.fullAt]);
    if (this.readyNodes.some((n) => !avoid.has(n))) {
      const choice = this.choose('', undefined, avoid);
      const next =
        choice.kind === 'node'
          ? this.readyNodes.find((n) => n.address === choice.id && !avoid.has(n))
          : undefined;
      if (next) return this.dispatch(job, next);
    }
    if (!this.readyNodes.some((n) => !job.barredBy.has(n))) {
      const why = `${node.nodeId} refused it (${kind}): ${message}`;
      if (job.sink.runLocally(`no node will take a job: ${why}`)) return;
      this.giveUp(job, 'MPM_ERR_JOB_REFUSED', `no node will take this job; ${why}`);
      return;
    }
    // Every node left is full: wait for a slot there.
    job.refusals++;
    const timer = setTimeout(
      () => this.offerAgain(job),
      Math.min(MAX_REFUSED_PAUSE_MS, 50 * job.refusals),
    );
    this.parked.set(job, timer);
  }

  /**
   * Holds a job that no node can take now (its own lost, no fallback to
   * the client) while a node may still come (connecting, in its checks,
   * retrying), at most `nodeWaitMs`: a loaded agent that dropped us is
   * waited for as at the start (node-wait.ts). False: nothing to wait for.
   */
  private awaitNode(job: RunningJob): boolean {
    const bound = this.options.nodeWaitMs ?? 0;
    if (bound <= 0 || this.closed || this.coming.length === 0) return false;
    trace(`job ${job.id}: no node ready; waiting up to ${bound} ms for one`);
    const timer = setTimeout(() => {
      this.awaitingNode.delete(job);
      const coming = this.coming.map((n) => `${n.address} (${n.reason ?? n.state})`).join(', ');
      this.giveUp(
        job,
        'MPM_ERR_AGENT_LOST',
        `no agent came back within ${bound / 1000} s to run this job (still trying: ${coming || 'none'})`,
      );
    }, bound);
    this.awaitingNode.set(job, timer);
    return true;
  }

  /** A node is ready, or none may come any more: the jobs waiting for one go on, in order. */
  private resumeAwaiting(): void {
    if (this.awaitingNode.size === 0) return;
    const ready = this.readyNodes.length > 0;
    if (!ready && this.coming.length > 0) return;
    for (const [job, timer] of [...this.awaitingNode]) {
      clearTimeout(timer);
      this.awaitingNode.delete(job);
      if (!ready) {
        this.giveUp(job, 'MPM_ERR_AGENT_LOST', 'no agent is reachable to run this job');
      } else this.dispatch(job, this.nextNode(job));
    }
  }

  /** A job of ours left `node`: its slot may take the oldest job waiting for one there. */
  private wakeParked(node: NodeChannel): void {
    for (const job of this.parked.keys()) {
      if (job.fullAt.has(node)) return this.offerAgain(job);
    }
  }

  /** A job refused for load is offered again, to the best node that has not barred it. */
  private offerAgain(job: RunningJob): void {
    const timer = this.parked.get(job);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.parked.delete(job);
    if (job.cancelled) {
      job.sink.exit(null, job.cancelled, job.node.nodeId, { queuedMs: 0, runMs: 0 });
      return;
    }
    job.fullAt.clear();
    const open = this.readyNodes.filter((n) => !job.barredBy.has(n));
    this.dispatch(job, this.nextNode(job) ?? (open.includes(job.node) ? job.node : open[0]));
  }

  /**
   * The best ready node for `job` by placement, never one that refused it
   * for good, nor `except`; undefined when placement picks none of them.
   */
  private nextNode(job: RunningJob, except?: NodeChannel): NodeChannel | undefined {
    const choice = this.choose('', except, job.barredBy);
    if (choice.kind !== 'node') return undefined;
    return this.readyNodes.find(
      (n) => n.address === choice.id && n !== except && !job.barredBy.has(n),
    );
  }

  /**
   * Never let a job of ours wait in one node's queue while another node has
   * a free slot: take queued jobs back (oldest first) for every free slot
   * seen, and place them again. A job that starts meanwhile stays put.
   */
  private rebalance(): void {
    const queued = [...this.jobs.values()]
      .filter((j) => j.queued && !j.withdrawing && !j.cancelled)
      .sort((a, b) => a.sentAtMs - b.sentAtMs);
    if (queued.length === 0) return;
    const free = new Map<NodeChannel, number>();
    for (const n of this.readyNodes) {
      const mine = [...this.jobs.values()].filter((j) => j.node === n && !j.queued).length;
      const running = Math.max(n.lastLoad?.running ?? 0, mine);
      const waiting = n.lastLoad?.queued ?? 0;
      if (waiting === 0 && n.slots > running) free.set(n, n.slots - running);
    }
    for (const job of queued) {
      // Only for a free slot on a node that has not refused this job for good.
      const to = [...free.keys()].find((n) => n !== job.node && !job.barredBy.has(n));
      if (to === undefined) continue;
      const left = free.get(to)! - 1;
      if (left > 0) free.set(to, left);
      else free.delete(to);
      job.withdrawing = true;
      job.node.send({ type: 'withdraw', id: job.id });
    }
  }

  /**
   * A job lost with its node (a fault, not a result) runs again, once: on
   * another node, or on the client when none is left. Not before its lease
   * on the lost node has certainly lapsed (lease + grace after our last
   * heartbeat, on our clock): until then the node may be frozen or cut off
   * with the job still running, and two copies must never write at once.
   */
  private rerun(
    job: RunningJob,
    lost: NodeChannel,
    reason: string,
    mayRun = true,
    fenceIt = mayRun,
  ): void {
    // mayRun false: the node told us it killed the job; nothing to wait for.
    const waitMs = mayRun ? lost.leaseLapsesInMs() : 0;
    // Lost while it may still run the job: fenced first (when asked), from now on.
    const fence = fenceIt ? this.fence(lost, reason) : undefined;
    const go = (fenced: FenceOutcome | undefined): void => {
      if (this.closed) return;
      if (job.cancelled) {
        job.sink.exit(null, job.cancelled, lost.nodeId, { queuedMs: 0, runMs: 0 });
        return;
      }
      if (fenced && !fenced.ok) {
        const node = { id: lost.nodeId, address: lost.address, reason };
        this.giveUp(job, 'MPM_ERR_FENCE', fenceProblem(this.options.fence!, node, fenced));
        return;
      }
      const next = this.nextNode(job);
      this.stats.retried++;
      const last = job.spec.argv[job.spec.argv.length - 1] ?? '';
      const command = typeof last === 'string' ? last : Buffer.from(last).toString('latin1');
      this.stats.reruns.push({
        command: command.slice(0, 200),
        from: lost.nodeId,
        to: next?.nodeId ?? 'local',
        reason,
      });
      const lapse =
        waitMs > 0
          ? `after waiting ${(waitMs / 1000).toFixed(1)} s for its lease there to lapse`
          : 'its lease there has lapsed';
      const fencedLine = fenced
        ? `fenced ${lost.nodeId} (the fence command ${fenced.status} in ${(fenced.ms / 1000).toFixed(1)} s); `
        : '';
      process.stderr.write(
        `mpmake: lost ${lost.nodeId} (${reason}) while it ran a job; ${fencedLine}running it again ${next ? `on ${next.nodeId}` : 'locally'} (${lapse})\n`,
      );
      this.dispatch(job, next);
    };
    // Even with nothing to wait for, on a timer: if this process was just
    // frozen, the heartbeat timers (due long ago) first find out which
    // nodes are gone, so the job is not sent into a dead connection.
    trace(`job ${job.id}: lost with ${lost.nodeId}; its lease lapses in ${waitMs} ms`);
    const timer = setTimeout(() => {
      this.waiting.delete(timer);
      if (fence) void fence.then(go);
      else go(undefined);
    }, waitMs);
    this.waiting.add(timer);
  }

  /**
   * --mp-fence: the fence command for a node lost while it ran jobs of
   * ours, run once per node however many jobs it had. From then on the
   * node is out of the build (cut off from the files, or powered off).
   */
  private fence(node: NodeChannel, reason: string): Promise<FenceOutcome> | undefined {
    const options = this.options.fence;
    if (!options) return undefined;
    const known = this.fences.get(node);
    if (known) return known;
    trace(`fencing ${node.nodeId} (${node.address}): ${options.command}`);
    const outcome = runFence(options, { id: node.nodeId, address: node.address, reason }).then(
      (r) => {
        this.stats.fenced.push({
          node: node.nodeId,
          address: node.address,
          reason,
          ok: r.ok,
          ms: r.ms,
          status: r.status,
        });
        trace(`fenced ${node.nodeId}: ${r.status} in ${r.ms} ms ${r.tail}`);
        if (!this.closed) node.close();
        return r;
      },
    );
    this.fences.set(node, outcome);
    return outcome;
  }

  /** Closes every channel (agents kill whatever of ours still runs) and removes the probe file. */
  close(): void {
    this.closed = true;
    for (const timer of this.waiting) clearTimeout(timer);
    this.waiting.clear();
    for (const timer of this.parked.values()) clearTimeout(timer);
    this.parked.clear();
    for (const timer of this.awaitingNode.values()) clearTimeout(timer);
    this.awaitingNode.clear();
    for (const node of this.nodes) node.close();
    this.probes.close();
  }
}
