import { spawn, type ChildProcess } from 'node:child_process';
import type { JobCommand } from './job-command.js';
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
    this.child = spawn(command.file, command.args, {
      cwd: command.cwd,
      env: command.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    this.pid = this.child.pid;
    this.watch(1, this.child.stdout!);
    this.watch(2, this.child.stderr!);
    this.child.once('exit', (code, signal) => this.exited({ code, signal }));
    this.child.once('error', (err) => {
      // Only a failure to start leaves no pid; later errors come with an exit.
      if (this.child.pid !== undefined) return;
      this.failedToStart(`mpm agent: cannot start job: ${err.message}\n`);
    });
  }
}
