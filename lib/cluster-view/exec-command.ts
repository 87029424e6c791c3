import { fstatSync } from 'node:fs';
import { remoteEnv } from '../coordinator/remote-env.js';
import type { NodeChannel } from '../client/node-channel.js';
import { MpmakeError, UsageError } from '../errors.js';
import type { JobMessage } from '../protocol/messages.js';
import { resolveClusterOptions, type RawClusterOptions } from './cluster-options.js';
import { ExecError, placeExec } from './exec-node.js';

/** mpm exec's own failures (no node, refused, lost) exit with this, as env(1) does. */
export const EXEC_FAILED = 125;
/** After a cancel, how long the node has to report the job's end. */
const CANCEL_WAIT_MS = 10_000;
/** Signals that cancel the remote job; mpm exec then dies by the same one. */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT'];

export interface RawExecOptions extends RawClusterOptions {
  /** Agent id or HOST:PORT to run on; default: the lowest-load node. */
  on?: string | undefined;
  /** Run under a pseudo-terminal; default: when stdout and stderr are terminals. */
  tty?: boolean | undefined;
  /** Say on stderr where the command runs. */
  verbose?: boolean | undefined;
  /** The command and its arguments, run without a shell. */
  command: string[];
}

/** How mpm exec ends: like its command, with a status or by a signal. */
export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Whether fds 1 and 2 are the same open file (`2>&1`, one terminal, one pipe). */
function sameOutput(): boolean {
  try {
    const a = fstatSync(1);
    const b = fstatSync(2);
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

function definedValues(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}

function isSignal(name: string | null): name is NodeJS.Signals {
  return name !== null && /^SIG[A-Z0-9]+$/.test(name);
}

/**
 * `mpm exec -- CMD ARGS...`: runs one command on the lowest-load node (or
 * the one named by --on), in this directory with this environment (cleaned
 * as for recipes), stdin /dev/null; relays its stdout and stderr byte for
 * byte and ends as it did. SIGINT, SIGTERM, SIGHUP and SIGQUIT cancel the
 * remote command with that signal; once it has ended, the result is that
 * signal. Failures of mpm exec itself print one line and give EXEC_FAILED.
 */
export async function runExecCommand(
  raw: RawExecOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ExecResult> {
  const command = raw.command.map(String);
  if (command.length === 0) {
    throw new UsageError('name a command to run: mpm exec [options] -- COMMAND [ARGS...]');
  }
  if (raw.on !== undefined && String(raw.on).trim() === '') {
    throw new UsageError('--on needs a node: an agent id or HOST:PORT, e.g. --on nodeA:7543');
  }
  const options = await resolveClusterOptions(raw, env, { requireHosts: raw.on === undefined });
  const say = (line: string): void => {
    process.stderr.write(`mpm exec: ${line}\n`);
  };
  const channels: NodeChannel[] = [];
  let interrupted: NodeJS.Signals | undefined;
  let onSignal: (signal: NodeJS.Signals) => void = (signal) => {
    // Still connecting: nothing runs yet, so stop at once.
    interrupted ??= signal;
    for (const c of channels) c.close();
  };
  const handler = (signal: NodeJS.Signals): void => onSignal(signal);
  for (const s of FORWARDED) process.on(s, handler);
  try {
    let placement;
    try {
      placement = await placeExec(options, raw.on, process.cwd(), (c) => channels.push(c));
    } catch (err) {
      if (interrupted) return { code: null, signal: interrupted };
      if (err instanceof ExecError) {
        say(`${err.message} [${err.code}]`);
        return { code: EXEC_FAILED, signal: null };
      }
      throw err;
    }
    if (interrupted) {
      placement.node.close();
      return { code: null, signal: interrupted };
    }
    const { node } = placement;
    if (raw.verbose) {
      for (const l of placement.leftOut) say(`left out ${l.address}: ${l.reason}`);
      say(`running on ${node.nodeId} (${node.address})`);
    }
    const useTty = raw.tty ?? (process.stdout.isTTY === true && process.stderr.isTTY === true);
    const job: JobMessage = {
      type: 'job',
      id: 1,
      argv: command,
      cwd: process.cwd(),
      env: remoteEnv(definedValues(env)),
      umask: process.umask(),
    };
    if (useTty) {
      job.tty = { cols: process.stdout.columns || 80, rows: process.stdout.rows || 24 };
    } else if (sameOutput()) job.mergeOutput = true;
    return await runJob(node, job, (set) => (onSignal = set), say);
  } catch (err) {
    if (err instanceof MpmakeError && err.code !== 'MPM_ERR_USAGE') {
      say(`${err.message} [${err.code}]`);
      return { code: EXEC_FAILED, signal: null };
    }
    throw err;
  } finally {
    for (const s of FORWARDED) process.off(s, handler);
    for (const c of channels) c.close();
  }
}

/** Sends the job, relays its output with acks, and resolves with its end. */
function runJob(
  node: NodeChannel,
  job: JobMessage,
  setSignalHandler: (h: (signal: NodeJS.Signals) => void) => void,
  say: (line: string) => void,
): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve) => {
    let cancelled: NodeJS.Signals | undefined;
    let cancelTimer: NodeJS.Timeout | undefined;
    let ended = false;
    const end = (result: ExecResult): void => {
      if (ended) return;
      ended = true;
      clearTimeout(cancelTimer);
      node.off('data', onData);
      node.off('exit', onExit);
      node.off('job-error', onJobError);
      node.off('state', onState);
      // Everything written so far reaches our stdout and stderr first.
      let pending = 2;
      const flushed = (): void => {
        if (--pending === 0) resolve(result);
      };
      process.stdout.write('', flushed);
      process.stderr.write('', flushed);
    };
    const cancel = (signal: NodeJS.Signals): void => {
      const again = cancelled !== undefined;
      cancelled ??= signal;
      node.send({ type: 'cancel', id: job.id, signal: again ? 'SIGKILL' : signal });
      cancelTimer ??= setTimeout(() => {
        say(`${node.nodeId} did not report the end of the command; giving up`);
        end({ code: null, signal: cancelled ?? signal });
      }, CANCEL_WAIT_MS);
    };
    const onData = (m: { id: number; stream: 1 | 2; bytes: Uint8Array }): void => {
      if (m.id !== job.id) return;
      const out = m.stream === 2 ? process.stderr : process.stdout;
      out.write(m.bytes, () => node.send({ type: 'ack', id: m.id, bytes: m.bytes.length }));
    };
    const onExit = (m: { id: number; code: number | null; signal: string | null }): void => {
      if (m.id !== job.id) return;
      if (cancelled) return end({ code: null, signal: cancelled });
      if (isSignal(m.signal)) return end({ code: null, signal: m.signal });
      end({ code: m.code ?? EXEC_FAILED, signal: null });
    };
    const onJobError = (id: number, code: string, message: string): void => {
      if (id !== job.id) return;
      say(`${node.nodeId}: ${message} [${code}]`);
      end(cancelled ? { code: null, signal: cancelled } : { code: EXEC_FAILED, signal: null });
    };
    const onState = (state: string, reason: string | undefined): void => {
      if (state !== 'down' && state !== 'closed') return;
      if (cancelled) return end({ code: null, signal: cancelled });
      say(
        `lost ${node.nodeId} (${reason ?? 'connection closed'}) while it ran the command; ` +
          'the agent kills it [MPM_ERR_AGENT_LOST]',
      );
      end({ code: EXEC_FAILED, signal: null });
    };
    // Our reader went away (`mpm exec -- yes | head`): stop the command as a
    // pipe would. Kept after the end: a late write error must not throw.
    const onOutputError = (): void => {
      if (!ended) cancel('SIGPIPE');
    };
    node.on('data', onData);
    node.on('exit', onExit);
    node.on('job-error', onJobError);
    node.on('state', onState);
    process.stdout.on('error', onOutputError);
    process.stderr.on('error', onOutputError);
    setSignalHandler(cancel);
    if (node.state !== 'ready') return onState(node.state, node.reason);
    node.send(job);
  });
}
