import { EventEmitter } from 'node:events';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { MAX_FILES_SEEN } from '../protocol/wire-limits.js';
import type { LocalWrites, ShimRequest, ShimText } from '../shim/shim-protocol.js';
import { LocalJobWatch } from './local-job-watch.js';
import {
  SHIM_FLAG_SAME_OUTPUT,
  SHIM_FLAG_STDERR_TTY,
  SHIM_FLAG_STDOUT_TTY,
} from '../shim/shim-protocol.js';
import type { BuildEvents, JobEndEvent, JobStartEvent } from './build-events.js';
import type { Cluster, FilesAtExit, JobSpec } from './cluster.js';
import { SHIP_EVERYTHING, type EnvFilter } from './env-filter.js';
import { commandKey, type CommandTimes } from '../placement/command-times.js';
import type { Choice } from '../placement/placement.js';
import { remoteEnv } from './remote-env.js';
import type { Expectation, ShimConnection } from './shim-server.js';
import { prerequisites, type WriteLog } from './write-log.js';
import type { ShellResolver } from './shell-resolver.js';
import { NodeWait } from './node-wait.js';

export interface RouterStats {
  /** Lines placement sent back to the client's own slots. */
  local: number;
  /** Lines that ran with a non-zero exit or a signal. */
  failed: number;
  /** Lines that could not run at all. */
  errors: number;
  /** Lines turned away by first-free placement ("cluster busy"). */
  refused: number;
  /** Of `local`: lines kept on the client because they cost less there than a round trip. */
  short: number;
  /** Lines that cost less on the client but went out: `shortLimit` short lines ran there already. */
  shortBusy: number;
}

export interface RouterOptions {
  /** The shim's path: an env SHELL equal to it is the user having none. */
  shimPath: string;
  /** Run under a pseudo-terminal on the node when make's output is one. */
  color: 'auto' | 'always' | 'never';
  /** Lines may run on the client when no agent is left (not --mp-no-fallback). */
  fallback: boolean;
  /** For the one warning when the cluster is gone. */
  warn: (line: string) => void;
  /** Which variables stay on the client; default: those that look like secrets. */
  envFilter?: EnvFilter;
  /**
   * --mp-fs-wait: how long the shim (for a job's targets) and a node (for
   * its inputs) wait to see files as their writer did; 0: not at all.
   */
  fsWaitMs: number;
  /** Where files of this build were written (needed when fsWaitMs > 0). */
  writes?: WriteLog;
  /** Node addresses on the client itself (`localhost/N`): their jobs get every variable. */
  onClient?: ReadonlySet<string>;
  /**
   * What is known of each kind of command's cost (CPU time) and of a round
   * trip: lines that typically cost less than a round trip stay on the client.
   */
  times?: CommandTimes;
  /** At most this many short lines run on the client at once; default: its cores. */
  shortLimit?: number;
  /**
   * false: no line stays on the client for being short (`--mp-local=`,
   * empty: nothing local); `times` is still learnt for the next build.
   */
  shortLines?: boolean;
  /** --mp-shell: the shell for every shell line, whatever make chose. */
  forcedShell?: string | undefined;
  /**
   * Under --mp-no-fallback, how long a line with no node ready waits for
   * one still connecting (see NodeWait); 0: it fails at once.
   */
  nodeWaitMs?: number;
}

const SHELL_NAMES = new Set(['sh', 'bash', 'dash', 'ksh', 'mksh', 'zsh', 'ash', 'posh', 'yash']);

/** A shell run with a -c flag (make's SHELL and .SHELLFLAGS), as opposed to a program make ran itself. */
function isShellLine(argv: readonly ShimText[]): boolean {
  const first = argv[0];
  if (typeof first !== 'string' || !SHELL_NAMES.has(first.slice(first.lastIndexOf('/') + 1)))
    return false;
  return argv.slice(1, -1).some((w) => typeof w === 'string' && /^-[^-]*c/.test(w));
}

/** `target` (absolute) and the other targets the interposer found its recipe makes, once each. */
function madePaths(req: ShimRequest, target: string): string[] {
  const also = req.env['__MPMAKE_ALSO'];
  const paths = [target, ...prerequisites(typeof also === 'string' ? also : undefined)];
  return [...new Set(paths.map((p) => resolve(req.cwd, p)))];
}

const asText = (t: ShimText | undefined): string =>
  t === undefined ? '' : typeof t === 'string' ? t : Buffer.from(t).toString('latin1');

/**
 * Turns one shim request into a job: picks where it runs, rebuilds argv
 * around the makefile's intended shell, ships a cleaned environment, relays
 * output with flow control, and forwards a cancel.
 */
export class RecipeRouter extends EventEmitter<BuildEvents> {
  readonly stats: RouterStats = {
    local: 0,
    failed: 0,
    errors: 0,
    refused: 0,
    short: 0,
    shortBusy: 0,
  };
  /** The variables held back from nodes so far, each with its rule (never their values). */
  readonly heldBackEnv = new Map<string, string>();
  private readonly live = new Set<ShimConnection>();
  /** Shims still revalidating a job's targets (their lag report to come). */
  private readonly revalidating = new Set<Promise<unknown>>();
  private seq = 0;
  private readonly localJobs = new LocalJobWatch();
  private readonly nodeWait: NodeWait;
  /** Short lines kept on the client and not yet seen to end. */
  private shortHere = 0;
  private readonly shortLimit: number;

  constructor(
    private readonly cluster: Cluster,
    private readonly shells: ShellResolver,
    private readonly options: RouterOptions,
  ) {
    super();
    this.nodeWait = new NodeWait(cluster, options.nodeWaitMs ?? 0);
    this.shortLimit = options.shortLimit ?? availableParallelism();
    const times = options.times;
    if (times) {
      this.on('job-end', (ev) => {
        if (ev.nodeId === 'local' || ev.error !== undefined || ev.code === null) return;
        const wallMs = ev.endedAtMs - ev.requestedAtMs - ev.queuedMs;
        times.recordRemote(commandKey(ev.command), ev.runMs, wallMs, ev.cpuMs);
      });
    }
  }

  private warnedGone = false;

  private warnGone(reason: string): void {
    if (this.warnedGone) return;
    this.warnedGone = true;
    this.options.warn(`mpmake: ${reason}; running the remaining recipes locally`);
  }

  /**
   * Resolves once every shim's report of its wait has arrived (or its shim
   * is gone); after make's exit, every line run on the client has ended.
   */
  async settled(): Promise<void> {
    await Promise.all([...this.revalidating]);
    this.localJobs.flush();
  }

  /**
   * A line handed back to its shim runs on the client as the shim's own
   * process: its job-end comes when that process ends (exit status unseen),
   * so the parallelism and the trace count it.
   */
  private endLocally(start: JobStartEvent, shimPid: number, ended?: () => void): void {
    const end = (endedAtMs: number, endSeen: boolean): void => {
      ended?.();
      const ev: JobEndEvent = {
        ...start,
        endedAtMs,
        code: null,
        signal: null,
        queuedMs: 0,
        runMs: 0,
      };
      if (endSeen) {
        ev.endSeen = true;
        ev.runMs = Math.max(0, endedAtMs - start.requestedAtMs);
      }
      this.emit('job-end', ev);
    };
    if (!Number.isInteger(shimPid) || shimPid <= 0) end(Date.now(), false);
    else this.localJobs.watch(shimPid, (t) => end(t, true));
  }

  /** Jobs whose shim is still connected. */
  get active(): number {
    return this.live.size;
  }

  /** What the shim must see before make gets a success: the node's view of the targets. */
  private expectation(
    code: number | null,
    signal: string | null,
    nodeId: string,
    files: FilesAtExit | undefined,
  ): Expectation | undefined {
    if (code !== 0 || signal !== null || !files?.seen || files.seen.length === 0) return undefined;
    if (this.options.fsWaitMs <= 0) return undefined;
    return { waitMs: this.options.fsWaitMs, from: nodeId, files: files.seen };
  }

  /**
   * A line the shim ran on the client by itself (the --mp-local list)
   * makes these files: a node that reads them revalidates them first.
   */
  wroteHere(w: LocalWrites): void {
    const writes = this.options.fsWaitMs > 0 ? this.options.writes : undefined;
    for (const p of w.paths) writes?.wroteOnClient(resolve(w.cwd, p));
  }

  handle(req: ShimRequest, conn: ShimConnection): void {
    const requestedAtMs = Date.now();
    // Started through the interposer (lib/shim/preload.c): argv is exactly
    // what make would exec, a shell line or make's own fast path.
    const execMode = req.env['__MPMAKE_EXEC'] !== undefined;
    const rawTarget = req.env[execMode ? '__MPMAKE_TARGET' : 'MPMAKE_TARGET'];
    const target = typeof rawTarget === 'string' && rawTarget !== '' ? rawTarget : undefined;
    const shellLine = !execMode || isShellLine(req.argv);
    const forced = this.options.forcedShell;
    // In exec mode, '' tells the shim to run its own program.
    const shell = execMode
      ? shellLine && forced !== undefined
        ? forced
        : ''
      : this.shells.shellFor(req.ppid, target);
    const last = req.argv[req.argv.length - 1] ?? '';
    const command = shellLine ? asText(last) : req.argv.map(asText).join(' ');
    // Before counting the client full, see which short lines ended since the last look.
    if (this.shortHere >= this.shortLimit) this.localJobs.refresh();
    const placed =
      this.options.shortLines === false
        ? 'send'
        : (this.options.times?.place(commandKey(command), this.shortHere, this.shortLimit) ??
          'send');
    const short = placed === 'short';
    const choice: Choice = short ? { kind: 'local' } : this.cluster.choose(target ?? command);
    if (short) this.stats.short++;
    if (placed === 'busy') this.stats.shortBusy++;
    const start: JobStartEvent = {
      seq: ++this.seq,
      nodeId: choice.kind === 'node' ? this.cluster.nodeIdOf(choice.id) : 'local',
      command,
      cwd: req.cwd,
      requestedAtMs,
    };
    if (target !== undefined) start.target = target;
    if (choice.kind === 'refuse') {
      this.stats.errors++;
      this.stats.refused++;
      conn.fail('cluster busy: every slot is taken (--mp-placement=first-free) [MPM_ERR_BUSY]');
      return;
    }
    if (choice.kind === 'none') {
      if (!this.options.fallback) {
        if ((this.options.nodeWaitMs ?? 0) > 0 && this.nodeWait.worthWaiting) {
          // A node may still come: the line waits for it, in order.
          this.nodeWait.hold(
            () => this.handle(req, conn),
            (message) => {
              this.stats.errors++;
              conn.fail(`${message} [MPM_ERR_NO_AGENTS]`);
            },
            () => conn.closed,
          );
          return;
        }
        this.stats.errors++;
        conn.fail('no agent is reachable and --mp-no-fallback is set [MPM_ERR_NO_AGENTS]');
        return;
      }
      this.warnGone('no agent is reachable');
    }
    const targetPath = target === undefined ? undefined : resolve(req.cwd, target);
    // Every file this run of the recipe makes: $@ first, then the other
    // targets of a grouped (`a b &:`) or multi-target pattern rule.
    const made = targetPath === undefined ? [] : madePaths(req, targetPath);
    const writes = this.options.fsWaitMs > 0 ? this.options.writes : undefined;
    const rawPid = req.env['__MPMAKE_SHIM_PID'];
    const shimPid = typeof rawPid === 'string' ? Number(rawPid) : NaN;
    if (choice.kind !== 'node') {
      this.stats.local++;
      this.emit('job-start', start);
      for (const p of made) writes?.wroteOnClient(p);
      conn.runLocally(shell);
      if (short) this.shortHere++;
      this.endLocally(start, shimPid, short ? () => this.shortHere-- : undefined);
      return;
    }
    const onClient = this.options.onClient?.has(choice.id) === true;
    const filter = onClient ? SHIP_EVERYTHING : this.options.envFilter;
    const env = remoteEnv(req.env, filter, this.heldBackEnv);
    if (env['SHELL'] === this.options.shimPath) delete env['SHELL'];
    const spec: JobSpec = {
      argv: shell === '' ? req.argv : [shell, ...req.argv.slice(1)],
      cwd: req.cwd,
      env,
      umask: req.umask,
    };
    // The node deletes $@ if the job is killed half-way, and stats each after.
    if (made.length > 0) spec.produces = made.slice(0, MAX_FILES_SEEN);
    if (writes) {
      spec.fsWaitMs = this.options.fsWaitMs;
      const rawPrereqs = req.env[execMode ? '__MPMAKE_PREREQS' : 'MPMAKE_PREREQS'];
      // The line's own targets too: an earlier line of the same recipe may
      // have written $@ on another host (`./prog > $@` then `cat $@`).
      const inputs = [
        ...prerequisites(typeof rawPrereqs === 'string' ? rawPrereqs : undefined),
        ...made,
      ];
      if (inputs.length > 0) {
        spec.inputsFor = (address) => writes.inputsFor(address, req.cwd, inputs);
      }
    }
    const bothTty =
      (req.flags & SHIM_FLAG_STDOUT_TTY) !== 0 && (req.flags & SHIM_FLAG_STDERR_TTY) !== 0;
    const tty = this.options.color === 'always' || (this.options.color === 'auto' && bothTty);
    if (tty) spec.tty = { cols: req.cols || 80, rows: req.rows || 24 };
    else if ((req.flags & SHIM_FLAG_SAME_OUTPUT) !== 0) spec.mergeOutput = true;
    this.live.add(conn);
    this.emit('job-start', start);
    const handle = this.cluster.run(choice.id, spec, {
      data: (stream, bytes, consumed) => {
        this.emit('job-output');
        conn.write(stream, bytes, consumed);
      },
      exit: (code, signal, nodeId, timing, files) => {
        this.live.delete(conn);
        if (signal !== null || code !== 0) this.stats.failed++;
        const expect = this.expectation(code, signal, nodeId, files);
        if (files?.seen) writes?.wroteOnNode(files.address, files.seen);
        const endedAtMs = Date.now();
        const waiting = conn.exit(code, signal, expect);
        this.revalidating.add(waiting);
        void waiting.then((fresh) => {
          this.revalidating.delete(waiting);
          const end: JobEndEvent = { ...start, nodeId, endedAtMs, code, signal, ...timing };
          if (fresh) {
            end.fs = fresh;
            if (fresh.stale.length > 0) this.stats.failed++;
          }
          if (files?.inputWait) end.inputWait = files.inputWait;
          this.emit('job-end', end);
        });
      },
      runLocally: (reason) => {
        if (!this.options.fallback || conn.closed) return false;
        this.live.delete(conn);
        this.warnGone(reason);
        this.stats.local++;
        for (const p of made) writes?.wroteOnClient(p);
        conn.runLocally(shell);
        this.endLocally({ ...start, nodeId: 'local' }, shimPid);
        return true;
      },
      fail: (code, message) => {
        this.live.delete(conn);
        this.stats.errors++;
        conn.fail(`${message} [${code}]`);
        const error = `${message} [${code}]`;
        this.emit('job-end', {
          ...start,
          endedAtMs: Date.now(),
          code: 127,
          signal: null,
          queuedMs: 0,
          runMs: 0,
          error,
        });
      },
    });
    conn.on('cancel', (signal) => handle.cancel(signal));
    conn.on('resize', (cols, rows) => {
      if (this.live.has(conn)) handle.resize(cols, rows);
    });
    conn.on('close', () => {
      // The shim is gone (killed): its job must not run on without it.
      if (this.live.delete(conn)) handle.cancel('SIGTERM');
    });
  }
}
