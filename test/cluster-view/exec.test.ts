// `mpm exec` against real agents on loopback: output on the right streams,
// the command's exit status or signal, --on, and Ctrl-C cancelling the job.
import { readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { mpmakeCli } from '../helpers/paths.js';
import { eventually, markerSeconds, sleepers } from '../helpers/procs.js';
import { cleanEnv, describeEnd, runCapture } from '../helpers/run.js';
import { deadPort, killSleepers, runMpm } from './mpm.js';

/** Prints the pids from the shell up to init: which processes it runs under. */
const ANCESTRY =
  'p=$$; while [ "$p" -gt 1 ]; do echo "$p"; p=$(sed "s/.*) //" /proc/$p/stat | cut -d" " -f2); done';

t.test('mpm exec', async (t) => {
  const cluster = await startCluster(t, 2, 2);
  const env = cleanEnv({ MPMAKE_HOSTS: cluster.hosts });
  const cwd = t.testdir();

  t.test('output on the right streams, the exit status', async (t) => {
    const r = await runMpm(['exec', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7'], {
      cwd,
      env,
    });
    t.equal(r.code, 7, describeEnd(r));
    t.equal(r.stdout.toString(), 'out\n');
    t.equal(r.stderr.toString(), 'err\n');
  });

  t.test('stdout and stderr on one pipe keep their order', async (t) => {
    const r = await runMpm(
      ['exec', '--', 'sh', '-c', 'echo 1; echo 2 >&2; echo 3; echo 4 >&2; exit 0'],
      { cwd, env, stdio: 'merged' },
    );
    t.equal(r.code, 0);
    t.equal(r.stdout.toString(), '1\n2\n3\n4\n');
  });

  t.test('argv exactly as given (no shell), in this directory, stdin /dev/null', async (t) => {
    const r = await runMpm(
      [
        'exec',
        '--',
        'sh',
        '-c',
        'printf "[%s]" "$@"; echo; pwd; cat; echo end',
        'sh',
        'a b',
        '',
        'c"d',
        '$HOME',
        '007',
        '1.10',
        '0x10',
        '--on',
      ],
      { cwd, env },
    );
    t.equal(r.code, 0, r.stderr.toString());
    t.equal(
      r.stdout.toString(),
      `[a b][][c"d][$HOME][007][1.10][0x10][--on]\n${realpathSync(cwd)}\nend\n`,
    );
  });

  t.test('--on runs on the named node, by id or HOST:PORT', async (t) => {
    for (const [i, name] of [
      [1, cluster.agents[1]!.id],
      [0, `127.0.0.1:${cluster.agents[0]!.port}`],
    ] as const) {
      const r = await runMpm(
        [
          'exec',
          '--on',
          name,
          '--verbose',
          '--',
          'sh',
          '-c',
          `echo "\${MPMAKE_REMOTE-unset} $MPMAKE_NODE"; ${ANCESTRY}`,
        ],
        { cwd, env },
      );
      t.equal(r.code, 0, r.stderr.toString());
      const [remote, ...pids] = r.stdout.toString().trim().split('\n');
      t.equal(
        remote,
        `unset ${cluster.agents[i]!.id}`,
        'the job has MPMAKE_NODE, no MPMAKE_REMOTE',
      );
      const under = (pid: number): boolean => pids.map(Number).includes(pid);
      t.ok(under(cluster.agents[i]!.pid), `--on ${name}: runs under agent ${i}`);
      t.notOk(under(cluster.agents[1 - i]!.pid), `--on ${name}: not under the other agent`);
      t.match(r.stderr.toString(), `mpm exec: running on ${cluster.agents[i]!.id}`);
    }
  });

  t.test('--on a node that is not there', async (t) => {
    const r = await runMpm(['exec', '--on', 'no-such-node', '--', 'true'], { cwd, env });
    t.equal(r.code, 125);
    t.match(r.stderr.toString(), /no listed node is called no-such-node/);
  });

  t.test('death by signal', async (t) => {
    const r = await runMpm(['exec', '--', 'sh', '-c', 'kill -TERM $$'], { cwd, env });
    t.equal(r.signal, 'SIGTERM', describeEnd(r));
  });

  t.test('SIGINT cancels the remote job, then mpm exec dies by SIGINT', async (t) => {
    const marker = markerSeconds(40);
    t.teardown(() => killSleepers(marker));
    let child: import('node:child_process').ChildProcess | undefined;
    const done = runMpm(['exec', '--', 'sleep', marker], {
      cwd,
      env,
      onSpawn: (c) => (child = c),
    });
    t.ok(await eventually(() => sleepers(marker).length === 1, 20_000), 'the sleep runs');
    child!.kill('SIGINT');
    const r = await done;
    t.equal(r.signal, 'SIGINT', describeEnd(r));
    t.ok(await eventually(() => sleepers(marker).length === 0, 5000), 'the sleep is gone');
  });

  t.test('no node reachable: exit 125 and why', async (t) => {
    const r = await runMpm(['exec', '--hosts', `127.0.0.1:${await deadPort()}`, '--', 'true'], {
      cwd,
      env,
    });
    t.equal(r.code, 125);
    t.match(r.stderr.toString(), /mpm exec: no agent is reachable: .*connection refused/);
  });

  // MExec: a whole build submitted to one node, whose recipes then spread
  // over the cluster (the agent gives every job MPMAKE_NODE; the mpmake there
  // starts a coordinator of its own).
  t.test('mpm exec --on NODE -- mpmake -j: the build uses the cluster', async (t) => {
    const dir = t.testdir({
      Makefile: 'all: a b c d\na b c d:\n\techo $@ > $@.out; sleep 0.3\n',
    });
    const report = `${dir}/report.json`;
    const r = await runMpm(
      [
        'exec',
        '--on',
        cluster.agents[0]!.id,
        '--',
        process.execPath,
        mpmakeCli,
        '-j',
        '--mp-quiet',
        `--mp-report=${report}`,
      ],
      { cwd: dir, env },
    );
    t.equal(r.code, 0, r.stderr.toString());
    const built = JSON.parse(readFileSync(report, 'utf8')) as { jobs: { remote: number } };
    t.equal(built.jobs.remote, 4, 'every recipe ran through an agent');
  });

  t.test('no command: usage error', async (t) => {
    const r = await runMpm(['exec'], { cwd, env });
    t.equal(r.code, 2);
  });

  t.test('issue-16: 126 and 127 exactly as a shell', async (t) => {
    for (const [argv, code, message] of [
      [['/etc/passwd'], 126, 'mpm agent: /etc/passwd: Permission denied\n'],
      [['/tmp'], 126, 'mpm agent: /tmp: Permission denied\n'],
      [['no-such-command-16'], 127, 'mpm agent: no-such-command-16: command not found\n'],
      [['/no/such/file'], 127, 'mpm agent: /no/such/file: No such file or directory\n'],
    ] as const) {
      const r = await runMpm(['exec', '--', ...argv], { cwd, env });
      t.equal(r.code, code, `${argv[0]}: ${describeEnd(r)}`);
      t.equal(r.stderr.toString(), message);
      const shell = await runCapture('sh', ['-c', '"$@"', 'sh', ...argv], { cwd, env });
      t.equal(shell.code, code, `${argv[0]}: sh -c gives the same status`);
    }
    const tty = await runMpm(['exec', '--tty', '--', '/etc/passwd'], { cwd, env });
    t.equal(tty.code, 126, 'the same under a pseudo-terminal');
    t.match(tty.stdout.toString(), /^mpm agent: \/etc\/passwd: Permission denied\r?\n$/);
  });

  t.test('issue-16: mpm exec options are checked', async (t) => {
    const on = await runMpm(['exec', '--on', '', '--', 'true'], { cwd, env });
    t.equal(on.code, 2);
    t.equal(
      on.stderr.toString(),
      'mpm exec: --on needs a node: an agent id or HOST:PORT, e.g. --on nodeA:7543 [MPM_ERR_USAGE]\n',
    );
    const hosts = await runMpm(['exec', '--hosts', '127.0.0.1::7543', '--', 'true'], { cwd, env });
    t.equal(hosts.code, 2);
    t.equal(
      hosts.stderr.toString(),
      'mpm exec: --hosts: cannot read host entry "127.0.0.1::7543": more than one ":" (an IPv6 address with a port goes in brackets: [::1]:7543); write HOST[:PORT][/SLOTS], e.g. "nodeA:7543/8", "[fd00::1]:7543" or "localhost/4" [MPM_ERR_USAGE]\n',
    );
  });

  // Issue 13: after every run above (exit statuses, signals, SIGINT, no
  // node), none of mpm exec's start-check probes is left in the tree; one
  // left by an mpm exec killed during its check goes with the next run.
  t.test('issue-13: no probe file of its own left in the tree', async (t) => {
    const probes = (): string[] => readdirSync(cwd).filter((f) => f.startsWith('.mpmake-probe-'));
    t.same(probes(), [], 'none after the runs above');
    const dead = await runCapture('sh', ['-c', 'echo $$'], { cwd, env: cleanEnv() });
    const stale = `.mpmake-probe-${dead.stdout.toString().trim()}-0123abcd`;
    writeFileSync(join(cwd, stale), 'left by a killed run');
    const r = await runMpm(['exec', '--', 'true'], { cwd, env });
    t.equal(r.code, 0, describeEnd(r));
    t.same(probes(), [], "the killed run's probe is gone, and this run's own");
  });
});

t.test('issue-16: mpm demo checks its options before starting anything', async (t) => {
  const cwd = t.testdir();
  for (const [args, message] of [
    [['--agents', 'abc'], '--agents must be a whole number from 1 to 16, not "abc"'],
    [['--slots', '0'], '--slots must be a whole number from 1 to 64, not "0"'],
    [
      ['--tree', 'nosuch'],
      '--tree "nosuch" is not one of the bundled trees; choose one of: ctree-small, mixed-small',
    ],
  ] as const) {
    const r = await runMpm(['demo', ...args], { cwd, env: cleanEnv() });
    t.equal(r.code, 2, args.join(' '));
    t.equal(r.stderr.toString(), `mpm demo: ${message} [MPM_ERR_USAGE]\n`);
    t.equal(r.stdout.toString(), '', 'nothing started');
  }
});
