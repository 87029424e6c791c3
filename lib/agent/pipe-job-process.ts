import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { ENV_FD, type JobCommand } from './job-command.js';
import { PipedJobProcess } from './piped-job-process.js';

/**
 * A job on pipes started with Node's child_process: stdout is stream 1,
 * stderr stream 2, stdin /dev/null. Used for jobs run as another user (the
 * launcher switches user) and where the spawner was not built.
 */
export class PipeJobProcess extends PipedJobProcess {
  readonly pid: number | undefined;
  private readonly child: ChildProcess;

  constructor(command: JobCommand) {
    super();
    const input = command.envInput;
    this.child = spawn(command.file, command.args, {
      cwd: command.cwd,
      env: command.env,
      // The launcher reads a job's environment from a pipe on ENV_FD.
      stdio: input ? ['ignore', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    // First of all: a spawn that fails (EMFILE, ENFILE, ENOENT) emits
    // 'error' on the next tick and leaves no pid and no streams.
    this.child.once('error', (err) => {
      // Only a failure to start leaves no pid; later errors come with an exit.
      if (this.child.pid !== undefined) return;
      this.failedToStart(`mpm agent: cannot start job: ${err.message}\n`);
    });
    this.pid = this.child.pid;
    const { stdout, stderr } = this.child;
    if (this.pid === undefined || !stdout || !stderr) return;
    this.watch(1, stdout);
    this.watch(2, stderr);
    this.child.once('exit', (code, signal) => this.exited({ code, signal }));
    if (input) {
      const pipe = this.child.stdio[ENV_FD] as Writable | null;
      // A launcher that dies before reading it all says why on stderr.
      pipe?.on('error', () => {});
      pipe?.end(input.block);
    }
  }

  /**
   * Not once the leader is reaped (Node emits 'exit' in the same callback
   * as it reaps): its id, and so the group's, may be another's by then.
   */
  override kill(signal: NodeJS.Signals): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    super.kill(signal);
  }
}
