/**
 * A node dies or hangs mid-build: its jobs run again elsewhere, once; the
 * build ends as plain make's would; nothing is left running anywhere.
 */
import t from 'tap';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster } from '../helpers/cluster.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';
import { eventually, markerSeconds, resumeOnTeardown, shims, sleepers } from '../helpers/procs.js';

/** n targets; each logs its start, sleeps `secs`, then writes its target. */
function makefile(n: number, secs: string): string {
  const names = Array.from({ length: n }, (_, i) => `t${i}`);
  return (
    `all: ${names.join(' ')}\n` +
    names
      .map((x) => `${x}:\n\t@echo start >> started.log; sleep ${secs}; echo built-${x} > ${x}\n`)
      .join('')
  );
}

const starts = (dir: string): number => {
  try {
    return readFileSync(join(dir, 'started.log'), 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
};

for (const how of ['SIGKILL', 'SIGSTOP'] as const) {
  t.test(
    `an agent ${how === 'SIGKILL' ? 'killed' : 'hung'} mid-build: its jobs run again, the build succeeds`,
    async (t) => {
      const cluster = await startCluster(t, 2, 2);
      const victim = cluster.agents[0]!;
      resumeOnTeardown(t, victim.pid);
      // The marker is a short sleep: jobs run it whole; what matters is that
      // none of the abandoned copies is still there after the build.
      const secs = markerSeconds(1);
      const dir = t.testdir({ Makefile: makefile(8, secs) });
      const report = join(dir, 'report.json');
      const build = runMpmake(
        [
          `--mp-hosts=${cluster.hosts}`,
          '--mp-quiet',
          `--mp-report=${report}`,
          '--mp-heartbeat-timeout=1500',
          '-j4',
        ],
        { cwd: dir, env: cleanEnv() },
      );
      t.ok(await eventually(() => starts(dir) >= 4, 20_000), 'both agents are busy');
      process.kill(victim.pid, how);
      const r = await build;
      t.equal(r.code, 0, r.stderr.toString());
      for (let i = 0; i < 8; i++)
        t.equal(readFileSync(join(dir, `t${i}`), 'utf8'), `built-t${i}\n`);
      const rep = JSON.parse(readFileSync(report, 'utf8'));
      t.ok(rep.reruns.length >= 1, 'the lost jobs were run again');
      const commands = rep.reruns.map((x: { command: string }) => x.command);
      t.equal(new Set(commands).size, commands.length, 'each lost job was run again once');
      for (const rerun of rep.reruns) t.equal(rerun.from, 'test-agent-0');
      t.match(r.stderr.toString(), /lost test-agent-0 .* running it again on test-agent-1/);
      if (how === 'SIGSTOP') {
        t.match(rep.reruns[0].reason, /heartbeat/);
        process.kill(victim.pid, 'SIGCONT');
      }
      t.ok(
        await eventually(() => sleepers(secs).length === 0, 5000),
        'no job copy left on any node',
      );
      t.notOk(existsSync(join(dir, '.mpmake-probe')), 'no probe file left');
    },
  );
}

t.test(
  'mpmake killed with SIGKILL: agents kill its jobs, shims exit, nothing keeps running',
  async (t) => {
    const cluster = await startCluster(t, 2, 2);
    const secs = markerSeconds(40);
    const dir = t.testdir({ Makefile: makefile(4, secs) });
    let pid = 0;
    const build = runMpmake([`--mp-hosts=${cluster.hosts}`, '--mp-quiet', '-j4'], {
      cwd: dir,
      env: cleanEnv(),
      onSpawn: (c) => (pid = c.pid ?? 0),
      timeoutMs: 30_000,
    });
    t.ok(
      await eventually(() => sleepers(secs).length === 4, 20_000),
      'four jobs running on the agents',
    );
    process.kill(pid, 'SIGKILL');
    const r = await build;
    t.equal(r.signal, 'SIGKILL');
    t.ok(await eventually(() => sleepers(secs).length === 0, 5000), 'the agents killed every job');
    for (let i = 0; i < 4; i++) t.notOk(existsSync(join(dir, `t${i}`)), 'no target was made');
  },
);

t.test('a shim killed mid-job: its job is cancelled on the node', async (t) => {
  const cluster = await startCluster(t, 1, 2);
  const secs = markerSeconds(50);
  const dir = t.testdir({ Makefile: makefile(1, secs) });
  const build = runMpmake([`--mp-hosts=${cluster.hosts}`, '--mp-quiet'], {
    cwd: dir,
    env: cleanEnv(),
    timeoutMs: 30_000,
  });
  t.ok(await eventually(() => sleepers(secs).length === 1, 20_000), 'the job runs on the agent');
  const [shim] = shims(`sleep ${secs}`);
  t.ok(shim, 'found the shim');
  process.kill(shim!, 'SIGKILL');
  const r = await build;
  t.equal(r.code, 2, 'make reports the killed recipe');
  t.match(r.stderr.toString(), /Killed/);
  t.ok(await eventually(() => sleepers(secs).length === 0, 5000), 'the remote job was cancelled');
});
