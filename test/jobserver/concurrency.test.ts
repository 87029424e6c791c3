/**
 * Jobserver behaviour end to end, with real make 4.3, real agents and the
 * project's own jobserver client. Concurrency is measured by the recipes
 * themselves: each appends "start"/"end" stamps to a log on the shared file
 * system, and the most overlapping intervals are counted from it.
 */
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { spawnLocalAgent } from '../../lib/agent/spawn-agent.js';
import { JobserverPool } from '../../lib/jobserver/pool.js';
import { startCluster } from '../helpers/cluster.js';
import { eventually } from '../helpers/procs.js';
import { cleanEnv, runMake, runMpmake } from '../helpers/run.js';
import { repoRoot } from '../helpers/paths.js';

const client = join(repoRoot, 'dist/fixtures/jobserver-client.js');

/** A recipe that logs its start and end (ms, node clock) around a sleep. */
const stamped = (name: string, secs: number): string =>
  `${name}:\n\t@echo "start $$(date +%s%3N)" >> $(LOG); sleep ${secs}; echo "end $$(date +%s%3N)" >> $(LOG)\n`;

function sleepMakefile(n: number, secs: number, extra = ''): string {
  const names = Array.from({ length: n }, (_, i) => `s${i}`);
  return (
    `LOG ?= $(CURDIR)/conc.log\n.PHONY: all ${names.join(' ')}\nall: ${names.join(' ')}\n` +
    extra +
    names.map((x) => stamped(x, secs)).join('')
  );
}

/** The most intervals open at once in a start/end log. */
function maxConcurrency(log: string): number {
  const events = log
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [kind, ms] = l.split(' ');
      return { at: Number(ms), d: kind === 'start' ? 1 : -1 };
    })
    // Ends before starts at the same ms: touching intervals do not overlap.
    .sort((a, b) => a.at - b.at || a.d - b.d);
  let cur = 0;
  let max = 0;
  for (const e of events) max = Math.max(max, (cur += e.d));
  return max;
}

t.test('a pool of N: at most N recipes at once, and N is reached', async (t) => {
  const cluster = await startCluster(t, 2, 4);
  const dir = t.testdir({ Makefile: sleepMakefile(12, 0.6) });
  const r = await runMpmake([`--mp-hosts=${cluster.hosts}`, '--mp-quiet', '-j3'], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(r.code, 0, r.stderr.toString());
  t.equal(maxConcurrency(readFileSync(join(dir, 'conc.log'), 'utf8')), 3);
  t.notMatch(r.stderr.toString(), /INTERNAL/);
});

t.test('under a parent make, the parent -j is obeyed', async (t) => {
  const cluster = await startCluster(t, 2, 4);
  const dir = t.testdir({
    Makefile: `all:\n\t+node ${join(repoRoot, 'dist/cli/mpmake.js')} --mp-quiet --mp-hosts="${cluster.hosts}" -C sub\n`,
    sub: { Makefile: sleepMakefile(10, 0.5) },
  });
  const r = await runMake(['-j2', '--no-print-directory'], { cwd: dir, env: cleanEnv() });
  t.equal(r.code, 0, r.stderr.toString());
  t.equal(maxConcurrency(readFileSync(join(dir, 'sub/conc.log'), 'utf8')), 2);
  t.notMatch(r.stderr.toString(), /warning/);
});

t.test('a parent pool that does not reach us: one warning, a serial build, no hang', async (t) => {
  const cluster = await startCluster(t, 1, 4);
  const dir = t.testdir({
    // No '+' and no $(MAKE): make does not pass its pool to this line.
    Makefile: `all:\n\tnode ${join(repoRoot, 'dist/cli/mpmake.js')} --mp-quiet --mp-hosts="${cluster.hosts}" -C sub\n`,
    sub: { Makefile: sleepMakefile(3, 0.2) },
  });
  const r = await runMake(['-j4', '--no-print-directory'], { cwd: dir, env: cleanEnv() });
  t.equal(r.code, 0, r.stderr.toString());
  t.equal(r.stderr.toString().match(/jobserver unavailable/g)?.length, 1, r.stderr.toString());
  t.equal(maxConcurrency(readFileSync(join(dir, 'sub/conc.log'), 'utf8')), 1);
});

t.test(
  'a fifo-style parent pool (make 4.4 style) is joined, with the project client',
  async (t) => {
    const cluster = await startCluster(t, 2, 4);
    const dir = t.testdir({
      Makefile:
        sleepMakefile(8, 0.5, 'all: client\n') +
        `client:\n\t+node ${client} --tokens 1 --hold-ms 300 --log $(CURDIR)/client.log\n`,
    });
    const pool = new JobserverPool(dir, 3);
    t.teardown(() => pool.close());
    const env = cleanEnv({ MAKEFLAGS: ` -j3 --jobserver-auth=fifo:${pool.path}` });
    const r = await runMpmake([`--mp-hosts=${cluster.hosts}`, '--mp-quiet'], { cwd: dir, env });
    t.equal(r.code, 0, r.stderr.toString());
    t.match(readFileSync(join(dir, 'client.log'), 'utf8'), /took 1 pipe[\s\S]*returned 1/);
    t.ok(maxConcurrency(readFileSync(join(dir, 'conc.log'), 'utf8')) <= 3);
    t.same(pool.drain(), { found: 2, expected: 2 }, 'every token came back to the parent pool');
  },
);

t.test('the client in fifo style takes and returns tokens', async (t) => {
  const dir = t.testdir();
  const pool = new JobserverPool(dir, 3);
  t.teardown(() => pool.close());
  const log = join(dir, 'client.log');
  const env = cleanEnv({ MAKEFLAGS: ` -j3 --jobserver-auth=fifo:${pool.path}` });
  execFileSync(process.execPath, [client, '--tokens', '2', '--hold-ms', '20', '--log', log], {
    env,
  });
  t.match(readFileSync(log, 'utf8'), /took 2 fifo[\s\S]*returned 2/);
  t.same(pool.drain(), { found: 2, expected: 2 });
});

t.test('a client killed holding a token does not lower later concurrency', async (t) => {
  const cluster = await startCluster(t, 2, 4);
  const names = Array.from({ length: 16 }, (_, i) => `s${i}`);
  const dir = t.testdir({
    Makefile:
      `LOG ?= $(CURDIR)/conc.log\n.PHONY: all crash ${names.join(' ')}\nall: ${names.join(' ')}\n` +
      `${names.join(' ')}: crash\n` +
      `crash:\n\t-+node ${client} --tokens 1 --die --log $(CURDIR)/client.log\n\t+@sleep 1.5\n` +
      names.map((x) => stamped(x, 0.6)).join(''),
  });
  const report = join(dir, 'report.json');
  const r = await runMpmake(
    [`--mp-hosts=${cluster.hosts}`, '--mp-quiet', `--mp-report=${report}`, '-j3'],
    {
      cwd: dir,
      env: cleanEnv(),
    },
  );
  t.equal(r.code, 0, r.stderr.toString());
  t.match(readFileSync(join(dir, 'client.log'), 'utf8'), /took 1/);
  t.equal(
    maxConcurrency(readFileSync(join(dir, 'conc.log'), 'utf8')),
    3,
    'still 3 at once after the crash',
  );
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  t.equal(rep.jobserver.tokensRefilled, 1, 'the lost token was put back');
  t.equal(rep.jobserver.tokensLost, 0, 'and every token is accounted for at the end');
  t.notMatch(r.stderr.toString(), /INTERNAL/);
});

t.test('the pool grows when an agent joins mid-build', async (t) => {
  const first = await startCluster(t, 1, 2);
  // A port for the second agent, which is not running when the build starts.
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const dir = t.testdir({ Makefile: sleepMakefile(24, 0.5) });
  const hosts = `${first.hosts} 127.0.0.1:${port}/2`;
  let late: Awaited<ReturnType<typeof spawnLocalAgent>> | undefined;
  t.teardown(() => late?.stop());
  const build = runMpmake([`--mp-hosts=${hosts}`, '--mp-quiet', '-j'], {
    cwd: dir,
    env: cleanEnv(),
  });
  // The second agent starts once the first job has: mpmake has left its
  // address out by then (a fixed 800 ms was sometimes too early at load,
  // and the agent was up before mpmake dialled it).
  const log = join(dir, 'conc.log');
  if (await eventually(() => existsSync(log), 60_000)) {
    late = await spawnLocalAgent({
      slots: 2,
      id: 'late',
      listen: `127.0.0.1:${port}`,
      env: cleanEnv(),
    });
  }
  const r = await build;
  t.equal(r.code, 0, r.stderr.toString());
  t.match(r.stderr.toString(), /leaving out 127\.0\.0\.1:\d+/);
  t.match(r.stderr.toString(), /late \(127\.0\.0\.1:\d+\) joined the build/);
  t.ok(
    maxConcurrency(readFileSync(join(dir, 'conc.log'), 'utf8')) > 2,
    'more than the first agent alone',
  );
});

t.test('mpmake under mpmake reuses the outer coordinator and pool', async (t) => {
  const cluster = await startCluster(t, 2, 2);
  const mpmake = join(repoRoot, 'dist/cli/mpmake.js');
  const dir = t.testdir({
    // The inner call is a plain line (no '+'): the shim still keeps it local.
    Makefile: `all:\n\t@node ${mpmake} --mp-hosts=127.0.0.1:1/1 -C sub --no-print-directory\n`,
    sub: { Makefile: sleepMakefile(6, 0.3) },
  });
  const report = join(dir, 'report.json');
  const r = await runMpmake([`--mp-hosts=${cluster.hosts}`, `--mp-report=${report}`, '-j3'], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(r.code, 0, r.stderr.toString());
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  t.equal(rep.jobs.remote, 6, "the inner build's recipes went through the outer coordinator");
  t.equal(
    r.stderr.toString().match(/^mpmake: \d+ jobs/gm)?.length,
    1,
    'one summary: no second coordinator',
  );
  t.notMatch(
    r.stderr.toString(),
    /leaving out 127\.0\.0\.1:1\b/,
    'the inner host list was never dialled',
  );
  t.ok(
    maxConcurrency(readFileSync(join(dir, 'sub/conc.log'), 'utf8')) <= 3,
    'the outer -j3 pool holds',
  );
});

t.test('a makefile that forces -j8 still runs at most the cluster slots at once', async (t) => {
  const cluster = await startCluster(t, 1, 2);
  const dir = t.testdir({ Makefile: 'MAKEFLAGS += -j8\n' + sleepMakefile(8, 0.4) });
  const r = await runMpmake([`--mp-hosts=${cluster.hosts}`, '--mp-quiet'], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(r.code, 0, r.stderr.toString());
  t.equal(
    maxConcurrency(readFileSync(join(dir, 'conc.log'), 'utf8')),
    2,
    'the agent queues the rest',
  );
});

t.test('the fifo style needs make 4.4: a clear error with make 4.3', async (t) => {
  const cluster = await startCluster(t, 1, 2);
  const dir = t.testdir({ Makefile: sleepMakefile(1, 0) });
  const r = await runMpmake([`--mp-hosts=${cluster.hosts}`, '--mp-jobserver-style=fifo', '-j2'], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(r.code, 2);
  t.match(r.stderr.toString(), /--mp-jobserver-style.*the fifo style needs GNU make 4\.4 or later/);
});
