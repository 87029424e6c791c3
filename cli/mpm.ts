#!/usr/bin/env node
/**
 * `mpm`: the cluster tool. A thin yargs entry: each command's handler
 * lazy-imports the one lib module that does the work and turns its result
 * into an exit status. To add a command, add one entry to `commands`.
 */
import yargs, { type Argv, type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { usageProblem } from '../lib/usage-words.js';

/** Usage errors and unreadable input files exit 2, like other Unix tools; every other failure 1. */
const EXIT_2 = new Set(['MPM_ERR_USAGE', 'MPM_ERR_TRACE']);

async function run(name: string, work: () => Promise<number>): Promise<never> {
  let status: number;
  try {
    status = await work();
  } catch (err) {
    const e = err as Error & { code?: string };
    const code = e.code?.startsWith('MPM_ERR_') ? ` [${e.code}]` : '';
    process.stderr.write(`mpm ${name}: ${e.message}${code}\n`);
    status = e.code !== undefined && EXIT_2.has(e.code) ? 2 : 1;
  }
  process.exit(status);
}

/**
 * The exit status of a command that ends like its child: its status, or
 * death by the same signal (Node ignores SIGPIPE, so that one becomes 141).
 */
async function endLike(result: {
  code: number | null;
  signal: NodeJS.Signals | null;
}): Promise<number> {
  const { signal } = result;
  if (signal === null) return result.code ?? 1;
  const { constants } = await import('node:os');
  if (signal !== 'SIGPIPE') {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
    // The signal is on its way; should it be one that does not kill, exit as a shell reports it.
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return 128 + (constants.signals[signal] ?? 0);
}

/** The options every cluster command takes, as mpmake's --mp-hosts etc. */
const clusterOptions = (y: Argv): Argv =>
  y
    .option('hosts', {
      type: 'string',
      describe: 'agents, "HOST[:PORT][/SLOTS] ..." (default: MPMAKE_HOSTS or the config file)',
    })
    .option('secret-file', {
      type: 'string',
      describe: "the cluster's shared secret (default: MPMAKE_SECRET_FILE or the config file)",
    })
    .option('config', { type: 'string', describe: 'mpmake config file (default: MPMAKE_CONFIG)' })
    .option('tls', {
      type: 'boolean',
      describe: 'TLS to every agent, also on loopback (MPMAKE_TLS; default: off loopback)',
    })
    .option('insecure', {
      type: 'boolean',
      describe: 'plaintext to agents off loopback, run with --insecure (MPMAKE_INSECURE)',
    });

const agent: CommandModule = {
  command: 'agent',
  describe: "run this node's agent: it runs the jobs clients send it",
  builder: (y: Argv) =>
    y
      .option('listen', {
        type: 'string',
        describe: 'HOST:PORT to listen on (PORT 0 picks a free one)',
        default: '127.0.0.1:7543',
      })
      .option('slots', { type: 'string', describe: 'jobs run at once (default: CPUs)' })
      .option('name', {
        type: 'string',
        alias: 'id',
        describe:
          "this node's name in summaries, reports, traces and `mpm status` " +
          '(default: HOSTNAME:PORT, or HOSTNAME/ADDRESS:PORT when listening on one address)',
      })
      .option('secret-file', {
        type: 'string',
        describe: "file holding the cluster's shared secret",
      })
      .option('insecure', {
        type: 'boolean',
        describe:
          'off loopback: allow listening without --secret-file, and without TLS (default there: --tls)',
      })
      .option('root', {
        type: 'string',
        array: true,
        describe: 'a job cwd must be under one of these (default: /)',
      })
      .option('max-queued-per-client', {
        type: 'string',
        describe: 'jobs one client may have waiting (default: 4096)',
      })
      .option('max-queued-bytes-per-client', {
        type: 'string',
        describe:
          "bytes (argv, env, cwd) of one client's waiting jobs, K/M/G allowed (default: 32M)",
      })
      .option('max-unauthenticated', {
        type: 'string',
        describe:
          'connections still authenticating, in all; beyond it the oldest are closed (default: 256)',
      })
      .option('max-queued-bytes', {
        type: 'string',
        describe: "bytes of all clients' waiting jobs together, K/M/G allowed (default: 128M)",
      })
      .option('tls', {
        type: 'boolean',
        describe:
          'encrypt every connection: TLS 1.3 keyed by the secret (needs --secret-file); the default off loopback',
      })
      .option('allow', {
        type: 'string',
        array: true,
        describe:
          'accept clients only from this network, e.g. 10.0.0.0/8 or fd00::/8; repeatable ' +
          '(default: anywhere with a secret, loopback only without)',
      })
      .option('user', {
        type: 'string',
        describe: 'started as root: run jobs as this user, with its groups',
      })
      .option('allow-root', {
        type: 'boolean',
        describe: 'started as root without --user: run jobs as root anyway',
      })
      .option('auth', {
        type: 'string',
        describe:
          'secret (default): clients prove the shared secret; munge: each client proves its ' +
          'uid with a MUNGE credential and its jobs run as that user (the agent runs as root)',
      })
      .option('min-uid', {
        type: 'string',
        describe:
          'with --auth munge: the lowest uid whose jobs run here, root aside (default: 1000)',
      })
      .option('munge-socket', {
        type: 'string',
        describe: "with --auth munge: munged's socket (default: /run/munge/munge.socket.2)",
      })
      .option('exit-with-stdin', {
        type: 'boolean',
        describe: 'shut down when stdin ends (an agent started by a program dies with it)',
      }),
  handler: (argv) =>
    run('agent', async () => {
      const { runAgent } = await import('../lib/agent/run-agent.js');
      return runAgent(argv as Parameters<typeof runAgent>[0]);
    }),
};

const trace: CommandModule = {
  command: 'trace <file>',
  describe:
    'what a build trace (mpmake --mp-trace) says: parallelism, critical path; --svg draws it',
  builder: (y: Argv) =>
    y
      .positional('file', { type: 'string', describe: 'the trace file', demandOption: true })
      .option('svg', { type: 'string', describe: 'write the timeline as an SVG picture here' }),
  handler: (argv) =>
    run('trace', async () => {
      const { runTraceCommand } = await import('../lib/report/trace-command.js');
      return runTraceCommand(argv as unknown as Parameters<typeof runTraceCommand>[0]);
    }),
};

const status: CommandModule = {
  command: 'status',
  describe: 'one table of the cluster: each node, its state, slots, load, clients',
  builder: (y: Argv) =>
    clusterOptions(y).option('json', {
      type: 'boolean',
      describe: 'print a JSON array of nodes instead of the table',
    }),
  handler: (argv) =>
    run('status', async () => {
      const { runStatusCommand } = await import('../lib/cluster-view/status-command.js');
      return runStatusCommand(argv as Parameters<typeof runStatusCommand>[0]);
    }),
};

const top: CommandModule = {
  command: 'top',
  describe: 'live view of the cluster and the jobs on each node (q quits)',
  builder: (y: Argv) =>
    clusterOptions(y).option('interval', {
      type: 'string',
      describe: 'refresh every this many ms (default: 1000)',
    }),
  handler: (argv) =>
    run('top', async () => {
      const { runTopCommand } = await import('../lib/cluster-view/top-command.js');
      return endLike(await runTopCommand(argv as Parameters<typeof runTopCommand>[0]));
    }),
};

const exec: CommandModule = {
  command: 'exec [command..]',
  describe: 'run one command on the lowest-load node, or --on a named one: mpm exec -- CMD ARGS',
  builder: (y: Argv) =>
    clusterOptions(y)
      // The command's words exactly as typed: `007` must not become 7.
      .parserConfiguration({
        'populate--': true,
        'parse-numbers': false,
        'parse-positional-numbers': false,
      })
      .positional('command', { type: 'string', array: true, describe: 'the command (after --)' })
      .option('on', { type: 'string', describe: 'run on this node (agent id or HOST:PORT)' })
      .option('tty', {
        type: 'boolean',
        describe: 'run under a pseudo-terminal (default: when stdout and stderr are terminals)',
      })
      .option('verbose', { type: 'boolean', describe: 'say on stderr which node runs it' }),
  handler: (argv) =>
    run('exec', async () => {
      const { runExecCommand } = await import('../lib/cluster-view/exec-command.js');
      const words = [argv['command'] ?? [], argv['--'] ?? []].flat() as unknown[];
      const raw = { ...argv, command: words.map(String) };
      return endLike(await runExecCommand(raw as Parameters<typeof runExecCommand>[0]));
    }),
};

const demo: CommandModule = {
  command: 'demo',
  describe: 'the quick start: local agents on loopback build a bundled fixture tree with mpmake -j',
  builder: (y: Argv) =>
    y
      .option('agents', { type: 'string', default: '3', describe: 'agents to start on loopback' })
      .option('slots', { type: 'string', default: '2', describe: 'slots per agent' })
      .option('tree', {
        type: 'string',
        default: 'ctree-small',
        describe: 'a tree in fixtures/trees',
      }),
  handler: (argv) =>
    run('demo', async () => {
      const { demoOptions, runDemo } = await import('../lib/demo.js');
      return runDemo(
        demoOptions(argv as unknown as { agents: string; slots: string; tree: string }),
      );
    }),
};

const commands: CommandModule[] = [agent, trace, status, top, exec, demo];

const names = commands.map((c) => String(c.command).split(' ')[0]!);
let cli = yargs(hideBin(process.argv))
  .scriptName('mpm')
  // Its messages are read back (usage-words.ts), so in the one language.
  .locale('en')
  .strict()
  .demandCommand(1, 'name a command')
  .fail((message, err, y) => {
    if (err) throw err;
    y.showHelp('error');
    const { command, problem } = usageProblem(message, hideBin(process.argv), names);
    const who = command === undefined ? 'mpm' : `mpm ${command}`;
    process.stderr.write(`\n${who}: ${problem}; see the usage above [MPM_ERR_USAGE]\n`);
    process.exit(2);
  })
  .help();
for (const command of commands) cli = cli.command(command);
await cli.parseAsync();
