/**
 * --mp-fence (issue 13, "whatever fails"): a node lost with jobs running is
 * fenced once before any of them runs again. Fenced: they run again on
 * another node. The fence fails or hangs: they are not run again anywhere
 * (a second copy could write beside one the node still runs); their lines
 * fail with MPM_ERR_FENCE and the build ends as make's does on a failed
 * recipe. The loss: an agent stopped with SIGSTOP (its jobs keep running
 * until their lease lapses).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { eventually, markerSeconds, resumeOnTeardown, sleepers } from '../helpers/procs.js';
import { cleanEnv, runMake, runMpmake } from '../helpers/run.js';

const TARGETS = ['t0', 't1', 't2', 't3'];
/** The node a recipe runs on, in a makefile. */
const NODE = '$${MPMAKE_NODE:-local}';

/** Each target logs `NODE TARGET` when it starts, sleeps, then is written. */
function makefile(secs: string): string {
  return (
    `all: ${TARGETS.join(' ')}\n` +
    TARGETS.map(
      (x) => `${x}:\n\t@echo "${NODE} $@" >> started.log; sleep ${secs}; echo built-$@ > $@\n`,
    ).join('')
  );
}

const lines = (path: string): string[] => {
  try {
    return readFileSync(path, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

const CASES = [
  { name: 'succeeds', fence: 'echo "$MPMAKE_FENCE_NODE $MPMAKE_FENCE_ADDR" >> "$LOG"' },
  {
    name: 'fails',
    fence: 'echo "$MPMAKE_FENCE_NODE" >> "$LOG"; echo no power switch answers >&2; exit 3',
  },
  {
    name: 'times out',
    fence: 'echo "$MPMAKE_FENCE_NODE" >> "$LOG"; exec sleep 60',
    timeoutMs: 500,
  },
] as const;

for (const c of CASES) {
  t.test(`an agent hung mid-build, the fence command ${c.name}`, async (t) => {
    const cluster = await startCluster(t, 2, 2);
    const victim = cluster.agents[0]!;
    resumeOnTeardown(t, victim.pid);
    const secs = markerSeconds(2);
    const dir = t.testdir({ Makefile: makefile(secs) });
    const fenceLog = join(dir, 'fenced.log');
    const started = join(dir, 'started.log');
    const report = join(dir, 'report.json');
    const build = runMpmake(
      [
        `--mp-hosts=${cluster.hosts}`,
        `--mp-report=${report}`,
        '--mp-heartbeat-timeout=1500',
        `--mp-fence=${c.fence}`,
        ...('timeoutMs' in c ? [`--mp-fence-timeout=${c.timeoutMs}`] : []),
        '-j4',
      ],
      { cwd: dir, env: cleanEnv({ LOG: fenceLog }), timeoutMs: 60_000 },
    );
    const on = (node: string): string[] => lines(started).filter((l) => l.startsWith(`${node} `));
    t.ok(
      await eventually(() => on(victim.id).length === 2 && lines(started).length === 4, 20_000),
      'two jobs running on each agent',
    );
    process.kill(victim.pid, 'SIGSTOP');
    const r = await build;
    const stderr = r.stderr.toString();
    t.same(
      lines(fenceLog).map((l) => l.split(' ')[0]),
      [victim.id],
      'the fence ran once, for the lost node (two of its jobs were lost)',
    );
    const rep = JSON.parse(readFileSync(report, 'utf8'));
    t.equal(rep.fenced?.length, 1, 'the report lists the fence');
    t.equal(rep.fenced?.[0]?.node, victim.id);
    // The summary line counts it, as the report lists it (it did not say).
    const summary = stderr.split('\n').find((l) => /^mpmake: \d+ jobs: /.test(l));
    t.match(
      summary,
      c.name === 'succeeds'
        ? `, 1 node fenced (${victim.id}); `
        : `, 1 fence failed (${victim.id}); `,
      'the summary line counts the fence',
    );
    const lost = on(victim.id).map((l) => l.split(' ')[1]!);
    if (c.name === 'succeeds') {
      t.equal(r.code, 0, stderr);
      t.same(lines(fenceLog), [`${victim.id} ${victim.hostSpec.replace(/\/\d+$/, '')}`]);
      t.match(
        stderr,
        new RegExp(
          `fenced ${victim.id} \\(the fence command exited 0 .*running it again on test-agent-1`,
        ),
      );
      t.equal(rep.fenced[0].ok, true);
      for (const x of TARGETS) t.equal(readFileSync(join(dir, x), 'utf8'), `built-${x}\n`);
      t.same(
        lines(started).filter((l) => !l.startsWith(`${victim.id} `)).length,
        4,
        'the lost jobs ran again on the other agent',
      );
    } else {
      // As make ends on a failed recipe: what plain make's status is then.
      const failing = join(dir, 'plain');
      mkdirSync(failing);
      writeFileSync(join(failing, 'Makefile'), 'all:\n\t@exit 1\n');
      const plain = await runMake([], { cwd: failing, env: cleanEnv() });
      t.equal(r.code, plain.code, `the build ends as make's on a failed recipe: ${stderr}`);
      t.match(stderr, /MPM_ERR_FENCE/);
      t.match(stderr, new RegExp(`could not fence ${victim.id}`));
      t.match(
        stderr,
        c.name === 'fails' ? /exited 3.*no power switch answers/ : /timed out after 500 ms/,
      );
      t.equal(rep.fenced[0].ok, false);
      t.same(
        lines(started).filter((l) => lost.includes(l.split(' ')[1]!)).length,
        lost.length,
        'the lost jobs were not run again anywhere',
      );
      for (const x of TARGETS.filter((x) => !lost.includes(x)))
        t.equal(readFileSync(join(dir, x), 'utf8'), `built-${x}\n`, 'the other jobs ended');
    }
    process.kill(victim.pid, 'SIGCONT');
    t.ok(await eventually(() => sleepers(secs).length === 0, 10_000), 'no job copy left');
  });
}
