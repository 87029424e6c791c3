#!/usr/bin/env node
/**
 * `mpm`: the cluster tool. A thin yargs entry: each command's handler
 * lazy-imports the one lib module that does the work and turns its result
 * into an exit status. To add a command, add one entry to `commands`.
 */
import yargs, { type Argv, type CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';

/** Usage errors exit 2, like other Unix tools; every other failure 1. */
async function run(name: string, work: () => Promise<number>): Promise<never> {
  let status: number;
  try {
    status = await work();
  } catch (err) {
    const e = err as Error & { code?: string };
    process.stderr.write(`mpm ${name}: ${e.message}\n`);
    status = e.code === 'MPM_ERR_USAGE' ? 2 : 1;
  }
  process.exit(status);
}

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
      .option('id', { type: 'string', describe: 'node id (default: HOSTNAME:PORT)' })
      .option('secret-file', {
        type: 'string',
        describe: "file holding the cluster's shared secret",
      })
      .option('insecure', {
        type: 'boolean',
        describe: 'allow a non-loopback --listen without --secret-file',
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

const commands: CommandModule[] = [agent, trace];

let cli = yargs(hideBin(process.argv))
  .scriptName('mpm')
  .strict()
  .demandCommand(1, 'name a command')
  .fail((message, err, y) => {
    if (err) throw err;
    y.showHelp('error');
    process.stderr.write(`\nmpm: ${message}\n`);
    process.exit(2);
  })
  .help();
for (const command of commands) cli = cli.command(command);
await cli.parseAsync();
