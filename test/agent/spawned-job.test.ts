import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { SpawnClient } from '../../lib/agent/spawn-client.js';
import { SpawnedJobProcess } from '../../lib/agent/spawned-job-process.js';
import type { JobOutcome } from '../../lib/agent/job-process.js';
import { eventually } from '../helpers/procs.js';

function run(spawner: SpawnClient, req: ConstructorParameters<typeof SpawnedJobProcess>[1]) {
  const job = new SpawnedJobProcess(spawner, req);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  job.on('data', (s, b) => (s === 1 ? out : err).push(b));
  return new Promise<{ out: string; err: string; outcome: JobOutcome; job: SpawnedJobProcess }>(
    (resolve) =>
      job.once('finish', (outcome) =>
        resolve({
          out: Buffer.concat(out).toString('latin1'),
          err: Buffer.concat(err).toString(),
          outcome,
          job,
        }),
      ),
  );
}

const base = { cwd: '/tmp', env: { PATH: '/usr/bin:/bin' }, umask: 0o022, mergeOutput: false };

t.test('the spawner runs jobs exactly: argv, env, bytes, umask, cwd, exits, signals', async (t) => {
  const spawner = SpawnClient.start();
  if (!spawner) {
    t.comment('build/mpmake-spawnd is not built: nothing to check');
    return;
  }
  t.teardown(() => spawner.close());
  const a = await run(spawner, {
    ...base,
    argv: ['/bin/sh', '-c', 'echo "$0|$1|$V|$(umask)|$(pwd)"; echo e >&2; exit 3', 'a b', "c'd"],
    env: { ...base.env, V: 'v' },
    umask: 0o027,
  });
  t.equal(a.out, "a b|c'd|v|0027|/tmp\n");
  t.equal(a.err, 'e\n');
  t.match(a.outcome, { code: 3, signal: null });
  t.ok(a.outcome.cpuMs !== undefined && a.outcome.cpuMs >= 0, 'its CPU time, from wait4');
  const latin = Buffer.from('caf\xe9', 'latin1');
  const b = await run(spawner, {
    ...base,
    argv: ['/bin/sh', '-c', 'printf %s "$1$X"', 'x', latin],
    env: { ...base.env, X: latin },
  });
  t.equal(b.out, 'caf\xe9caf\xe9', 'raw bytes in argv and env arrive unchanged');
  const c = await run(spawner, {
    ...base,
    mergeOutput: true,
    argv: ['/bin/sh', '-c', 'echo 1; echo 2 >&2; echo 3'],
  });
  t.equal(c.out, '1\n2\n3\n', 'merged output keeps its order');
  const d = await run(spawner, { ...base, argv: ['/bin/sh', '-c', 'kill -TERM $$'] });
  t.match(d.outcome, { code: null, signal: 'SIGTERM' });
  const e = await run(spawner, { ...base, argv: ['/nonexistent/prog'] });
  t.match(e.outcome, { code: 127, signal: null });
  t.match(e.err, /nonexistent/);
  const f = await run(spawner, { ...base, argv: ['/bin/sh', '-c', 'head -c 5000000 /dev/zero'] });
  t.equal(f.out.length, 5_000_000, 'big output arrives whole');
  t.same(readdirSync(spawner.dir), [], 'FIFOs are removed when jobs end');
});

t.test('a cancel reaches the whole process group; the spawner dying kills its jobs', async (t) => {
  const spawner = SpawnClient.start();
  if (!spawner) return;
  const marker = `9${Math.floor(Math.random() * 900 + 100)}.5`;
  const job = new SpawnedJobProcess(spawner, {
    ...base,
    argv: ['/bin/sh', '-c', `sleep ${marker} & wait`],
  });
  job.on('data', () => {});
  const done = new Promise<JobOutcome>((r) => job.once('finish', r));
  job.kill('SIGTERM'); // before it even started: applied once it has a pid
  t.match(await done, { code: null, signal: 'SIGTERM' });
  const alive = (): boolean => spawnSync('pgrep', ['-f', `sleep ${marker}`]).status === 0;
  t.ok(await eventually(() => !alive(), 5000), 'the background child died with its group');
  const job2 = new SpawnedJobProcess(spawner, {
    ...base,
    argv: ['/bin/sh', '-c', `sleep ${marker}`],
  });
  job2.on('data', () => {});
  const done2 = new Promise<JobOutcome>((r) => job2.once('finish', r));
  t.ok(await eventually(alive, 10_000), 'running');
  spawner.close();
  await done2;
  t.ok(await eventually(() => !alive(), 5000), 'closing the spawner killed the job');
});
