import type { AgentLog } from './agent-log.js';
import type { JobCommand } from './job-command.js';
import { JobProcess, type JobOutcome } from './job-process.js';
import { PipeJobProcess } from './pipe-job-process.js';
import { loadPty, PtyJobProcess } from './pty-job-process.js';

let warnedNoPty = false;

/**
 * Starts a job on a pty when it asks for one (and node-pty loads here), on
 * pipes otherwise. A job that cannot be started at all still ends the normal
 * way: a message on stream 2 and exit status 127, as a shell would report it.
 */
export function startJobProcess(command: JobCommand, log: AgentLog): JobProcess {
  try {
    if (command.tty) {
      const pty = loadPty();
      if (!(pty instanceof Error)) return new PtyJobProcess(command, command.tty, pty);
      if (!warnedNoPty) {
        warnedNoPty = true;
        log(`node-pty cannot be loaded (${pty.message}); tty jobs run on pipes`);
      }
    }
    return new PipeJobProcess(command);
  } catch (err) {
    return new FailedJobProcess(`mpm agent: cannot start job: ${(err as Error).message}\n`);
  }
}

/** A job that never started: reports why on stream 2, then exit status 127. */
class FailedJobProcess extends JobProcess {
  readonly pid = undefined;

  constructor(message: string) {
    super();
    // Emitted on the next tick, once the caller has its listeners attached.
    setImmediate(() => {
      this.emit('data', 2, Buffer.from(message));
      const outcome: JobOutcome = { code: 127, signal: null };
      this.emit('finish', outcome);
    });
  }

  pause(): void {}
  resume(): void {}
}
