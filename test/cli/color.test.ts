// Compiler colours: under a terminal, a recipe run on a node keeps the
// colours gcc gives it on a terminal (--mp-color=auto runs it under a
// pseudo-terminal there), exactly as plain make does; with --mp-color=never,
// or with output to a pipe, there are none.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { PtyRun } from '../cluster-view/mpm.js';
import { startCluster } from '../helpers/cluster.js';
import { mpmakeCli } from '../helpers/paths.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';

const ESC = '\x1b[';
/** The warning gcc gives for x.c, whatever its colours. */
const WARNING = /unused variable/;

/** A tree whose one recipe compiles a file with an unused variable. */
function tree(t: Test): string {
  return t.testdir({
    'x.c': 'int main(void) {\n  int unused;\n  return 0;\n}\n',
    Makefile: 'x.o: x.c\n\tgcc -fdiagnostics-color=auto -Wall -c x.c\n',
  });
}

/** The environment of a terminal session: a TERM gcc colours for, no GCC_COLORS. */
function terminalEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = cleanEnv({ TERM: 'xterm-256color', ...extra });
  delete env['GCC_COLORS'];
  delete env['NO_COLOR'];
  return env;
}

/** How many recipes ran on a node, from mpmake's report. */
function remoteJobs(report: string): number {
  return (JSON.parse(readFileSync(report, 'utf8')) as { jobs: { remote: number } }).jobs.remote;
}

t.test('gcc colours through mpmake', async (t) => {
  const cluster = await startCluster(t, 2, 2);

  t.test('plain make on a terminal: colours (the reference)', async (t) => {
    const dir = tree(t);
    const make = PtyRun.start(t, 'make', [], { cwd: dir, env: terminalEnv() });
    const end = await make.finish();
    t.equal(end.exitCode, 0, make.output);
    t.match(make.output, WARNING);
    t.ok(make.output.includes(ESC), 'the output has ANSI colour escapes');
  });

  t.test('mpmake --mp-color=auto on a terminal: colours, run on a node', async (t) => {
    const dir = tree(t);
    const report = join(dir, 'report.json');
    const run = PtyRun.start(
      t,
      process.execPath,
      [mpmakeCli, '--mp-color=auto', '--mp-quiet', `--mp-report=${report}`],
      { cwd: dir, env: terminalEnv({ MPMAKE_HOSTS: cluster.hosts }) },
    );
    const end = await run.finish();
    t.equal(end.exitCode, 0, run.output);
    t.equal(remoteJobs(report), 1, 'the recipe ran on a node');
    t.match(run.output, WARNING);
    t.ok(run.output.includes(ESC), 'the output has ANSI colour escapes');
  });

  t.test('mpmake --mp-color=never on a terminal: no colours', async (t) => {
    const dir = tree(t);
    const report = join(dir, 'report.json');
    const run = PtyRun.start(
      t,
      process.execPath,
      [mpmakeCli, '--mp-color=never', '--mp-quiet', `--mp-report=${report}`],
      { cwd: dir, env: terminalEnv({ MPMAKE_HOSTS: cluster.hosts }) },
    );
    const end = await run.finish();
    t.equal(end.exitCode, 0, run.output);
    t.equal(remoteJobs(report), 1, 'the recipe ran on a node');
    t.match(run.output, WARNING);
    t.notOk(run.output.includes(ESC), 'no escape sequences');
  });

  t.test('mpmake --mp-color=auto into pipes: no colours', async (t) => {
    const dir = tree(t);
    const report = join(dir, 'report.json');
    const r = await runMpmake(['--mp-color=auto', '--mp-quiet', `--mp-report=${report}`], {
      cwd: dir,
      env: terminalEnv({ MPMAKE_HOSTS: cluster.hosts }),
    });
    t.equal(r.code, 0, r.stderr.toString());
    t.equal(remoteJobs(report), 1, 'the recipe ran on a node');
    const out = Buffer.concat([r.stdout, r.stderr]).toString();
    t.match(out, WARNING);
    t.notOk(out.includes(ESC), 'no escape sequences');
  });
});
