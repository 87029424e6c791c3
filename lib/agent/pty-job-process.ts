import { closeSync, constants, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { IPty } from 'node-pty';
import type { TtySize } from '../protocol/messages.js';
import { removeEnvFile, writeEnvFile } from './env-file.js';
import type { JobCommand } from './job-command.js';
import { JobProcess, processExists, signalName } from './job-process.js';

type PtyModule = typeof import('node-pty');

const require = createRequire(import.meta.url);
let ptyModule: PtyModule | Error | undefined;

/** node-pty, loaded on the first tty job; an Error when it cannot be loaded here. */
export function loadPty(): PtyModule | Error {
  if (ptyModule === undefined) {
    try {
      ptyModule = require('node-pty') as PtyModule;
    } catch (err) {
      ptyModule = err as Error;
    }
  }
  return ptyModule;
}

/** How often a tty job checks whether its process is gone (node-pty tells only later). */
const EXITED_POLL_MS = 5;
/** After the process is gone, silence this long means its output is all read. */
const DRAINED_QUIET_MS = 5;

/**
 * A job under a pseudo-terminal (node-pty), so compilers see a terminal and
 * keep their colours. All output is stream 1.
 *
 * Two traps lose the end of a job's output, and both are avoided here:
 * - When the last slave fd closes, libuv may report EOF on the master after
 *   a short read while the kernel is still moving bytes into the master's
 *   buffer (seen losing the last few KiB of 1 MiB outputs). So the agent
 *   holds a slave fd itself, and closes it only once the process is gone
 *   and the output has gone quiet.
 * - node-pty drops whatever is unread 200 ms after the process exits. So
 *   once the process is gone, flow control no longer holds output back:
 *   with the writer dead, what is left is bounded by the kernel's buffer.
 */
export class PtyJobProcess extends JobProcess {
  readonly pid: number;
  private readonly term: IPty;
  private slaveFd: number | undefined;
  private envFile: string | undefined;
  private paused = false;
  private exited = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private quietTimer: NodeJS.Timeout | undefined;

  constructor(command: JobCommand, tty: TtySize, pty: PtyModule) {
    super();
    const args = [...command.args];
    const input = command.envInput;
    const envFile = input ? writeEnvFile(input.block) : undefined;
    if (input && envFile) args[input.argIndex] = `file:${envFile}`;
    try {
      this.term = pty.spawn(command.file, args, {
        name: 'xterm-256color',
        cols: tty.cols,
        rows: tty.rows,
        cwd: command.cwd,
        env: command.env,
        encoding: null,
      });
    } catch (err) {
      if (envFile) removeEnvFile(envFile);
      throw err;
    }
    this.envFile = envFile;
    this.pid = this.term.pid;
    this.slaveFd = holdSlave(this.term);
    // With `encoding: null` node-pty hands out Buffers, though typed as strings.
    this.term.onData((data) => {
      this.emit('data', 1, data as unknown as Buffer);
      if (this.exited) this.armQuietTimer();
    });
    this.term.onExit(({ exitCode, signal }) => {
      this.exited = true;
      this.cleanup();
      this.emit(
        'finish',
        signal ? { code: null, signal: signalName(signal) } : { code: exitCode, signal: null },
      );
    });
    this.pollTimer = setInterval(() => {
      if (!processExists(this.pid)) this.onProcessGone();
    }, EXITED_POLL_MS);
    this.pollTimer.unref();
  }

  /**
   * Not once the leader is known to be gone: its id, and so the group's,
   * may be another's by then. (node-pty reaps on its own thread, so a
   * signal sent just before onExit runs can still find a reused id.)
   */
  override kill(signal: NodeJS.Signals): void {
    if (this.exited) return;
    super.kill(signal);
  }

  pause(): void {
    if (this.paused || this.exited) return;
    this.paused = true;
    this.term.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.term.resume();
  }

  /** The client's terminal changed size: so does the job's (its processes get SIGWINCH). */
  override resize(cols: number, rows: number): void {
    if (this.exited) return;
    try {
      this.term.resize(cols, rows);
    } catch {
      // The pty is already closed: the job is ending.
    }
  }

  private onProcessGone(): void {
    clearInterval(this.pollTimer);
    this.exited = true;
    this.resume();
    this.armQuietTimer();
  }

  /** Closes our slave fd once output has been quiet for DRAINED_QUIET_MS. */
  private armQuietTimer(): void {
    clearTimeout(this.quietTimer);
    this.quietTimer = setTimeout(() => this.releaseSlave(), DRAINED_QUIET_MS);
  }

  private releaseSlave(): void {
    if (this.slaveFd === undefined) return;
    try {
      closeSync(this.slaveFd);
    } catch {
      // Already closed: nothing to release.
    }
    this.slaveFd = undefined;
  }

  private cleanup(): void {
    if (this.envFile) removeEnvFile(this.envFile);
    this.envFile = undefined;
    clearInterval(this.pollTimer);
    clearTimeout(this.quietTimer);
    this.releaseSlave();
  }
}

/** Opens the pty's slave side (never as our controlling tty); undefined if that fails. */
function holdSlave(term: IPty): number | undefined {
  const ptsName = (term as IPty & { ptsName?: string }).ptsName;
  if (ptsName === undefined) return undefined;
  try {
    return openSync(ptsName, constants.O_RDWR | constants.O_NOCTTY);
  } catch {
    return undefined;
  }
}
