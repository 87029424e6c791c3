import type { ShimRequest } from '../shim/shim-protocol.js';
import { SHIM_FLAG_STDERR_TTY, SHIM_FLAG_STDOUT_TTY } from '../shim/shim-protocol.js';
import type { Cluster, JobSpec } from './cluster.js';
import { remoteEnv } from './remote-env.js';
import type { ShimConnection } from './shim-server.js';
import type { ShellResolver } from './shell-resolver.js';

export interface RouterStats {
  /** Lines placement sent back to the client's own slots. */
  local: number;
  /** Lines that ran with a non-zero exit or a signal. */
  failed: number;
  /** Lines that could not run at all. */
  errors: number;
}

export interface RouterOptions {
  /** The shim's path: an env SHELL equal to it is the user having none. */
  shimPath: string;
  /** Run under a pseudo-terminal on the node when make's output is one. */
  color: 'auto' | 'always' | 'never';
}

/**
 * Turns one shim request into a job: picks where it runs, rebuilds argv
 * around the makefile's intended shell, ships a cleaned environment, relays
 * output with flow control, and forwards a cancel.
 */
export class RecipeRouter {
  readonly stats: RouterStats = { local: 0, failed: 0, errors: 0 };
  private readonly live = new Set<ShimConnection>();

  constructor(
    private readonly cluster: Cluster,
    private readonly shells: ShellResolver,
    private readonly options: RouterOptions,
  ) {}

  /** Jobs whose shim is still connected. */
  get active(): number {
    return this.live.size;
  }

  handle(req: ShimRequest, conn: ShimConnection): void {
    const shell = this.shells.shellFor(req.ppid);
    const choice = this.cluster.choose();
    if (choice.kind !== 'node') {
      this.stats.local++;
      conn.runLocally(shell);
      return;
    }
    const env = remoteEnv(req.env);
    if (env['SHELL'] === this.options.shimPath) delete env['SHELL'];
    const spec: JobSpec = { argv: [shell, ...req.argv.slice(1)], cwd: req.cwd, env, umask: req.umask };
    const bothTty = (req.flags & SHIM_FLAG_STDOUT_TTY) !== 0 && (req.flags & SHIM_FLAG_STDERR_TTY) !== 0;
    const tty = this.options.color === 'always' || (this.options.color === 'auto' && bothTty);
    if (tty) spec.tty = { cols: req.cols || 80, rows: req.rows || 24 };
    this.live.add(conn);
    const handle = this.cluster.run(choice.id, spec, {
      data: (stream, bytes, consumed) => conn.write(stream, bytes, consumed),
      exit: (code, signal) => {
        this.live.delete(conn);
        if (signal !== null || code !== 0) this.stats.failed++;
        conn.exit(code, signal);
      },
      fail: (code, message) => {
        this.live.delete(conn);
        this.stats.errors++;
        conn.fail(`${message} (${code})`);
      },
    });
    conn.on('cancel', (signal) => handle.cancel(signal));
    conn.on('close', () => {
      // The shim is gone (killed): its job must not run on without it.
      if (this.live.delete(conn)) handle.cancel('SIGTERM');
    });
  }
}
