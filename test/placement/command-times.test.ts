// Issue 16: short jobs stay local. What placement learns about commands, as
// plain functions: the kind of a command, and whether it beats a round trip.
import t from 'tap';
import { CommandTimes, commandKey } from '../../lib/placement/command-times.js';
import { isDryRun } from '../../lib/coordinator/make-args.js';

t.test('a command kind: program base name and its first plain words', async (t) => {
  t.equal(
    commandKey('/usr/bin/cmake -E cmake_echo_color --switch= --green "Building C object"'),
    'cmake -E cmake_echo_color',
  );
  t.equal(
    commandKey('cd /b/sub && /usr/bin/cmake -E cmake_depends "Unix Makefiles" /s'),
    'cmake -E cmake_depends',
  );
  t.equal(commandKey('cd /b && /usr/bin/cc -O2 -o CMakeFiles/a.o -c /s/a.c'), 'cc -O2 -o');
  t.equal(commandKey('echo hello world'), 'echo hello world');
  t.equal(commandKey('touch stamp.txt'), 'touch');
  t.equal(commandKey('   '), '');
});

t.test('shorter than a round trip: learnt from this build, or given by the last one', async (t) => {
  const times = new CommandTimes();
  t.equal(times.roundTripMs, undefined);
  t.notOk(times.cheaperOnClient('touch'), 'nothing known yet: send it');
  times.recordRemote('touch', 1, 9); // a round trip of 8 ms
  times.recordRemote('cc -c', 400, 410);
  times.recordRemote('cc -c', 300, 306);
  t.equal(times.roundTripMs, 8, 'the median round trip');
  t.ok(times.cheaperOnClient('touch'), '1 ms < 8 ms: stays local');
  t.notOk(times.cheaperOnClient('cc -c'), 'compiles go to nodes');
  t.notOk(times.cheaperOnClient('echo'), 'never seen: send it');
  times.recordRemote('touch', 20, 28);
  times.recordRemote('touch', 30, 38);
  t.notOk(times.cheaperOnClient('touch'), 'once it typically runs longer, it goes to nodes');
  const next = new CommandTimes(JSON.parse(JSON.stringify(times.toJSON())));
  t.equal(next.roundTripMs, 8, 'the next build starts with what this one learnt');
  t.notOk(next.cheaperOnClient('touch'));
  t.same(next.toJSON().commands['cc -c'], { n: 2, recentMs: [400, 300] });
});

t.test(
  'issue-16 cmake-short MISSED: a loaded node wall times do not make a helper long',
  async (t) => {
    // Yesterday's benchmark: at load 20, every helper ran > 200 ms of wall
    // time on its node against a 29 ms round trip, so nothing stayed local.
    const times = new CommandTimes();
    for (let i = 0; i < 5; i++) {
      times.recordRemote('touch', 240, 269, 2); // 2 ms of CPU, the rest waiting for one
      times.recordRemote('cc -O2 -o', 900, 929, 160);
    }
    t.equal(times.roundTripMs, 29);
    t.equal(times.typicalCostMs('touch'), 2, 'its cost is its CPU time');
    t.ok(times.cheaperOnClient('touch'), '2 ms of CPU < a 29 ms round trip: stays local');
    t.notOk(times.cheaperOnClient('cc -O2 -o'), '160 ms of CPU: goes to a node');
    // A run whose node could not tell its CPU time (a pty job) keeps what is known.
    times.recordRemote('touch', 250, 279);
    t.same(times.toJSON().commands['touch']?.recentCpuMs, [2, 2, 2, 2, 2]);
    // A history from before CPU times (wall only) still decides by wall time.
    const old = new CommandTimes({
      roundTripMs: 29,
      commands: { echo: { n: 1, recentMs: [240] } },
    });
    t.notOk(old.cheaperOnClient('echo'), 'wall time only: 240 ms is not short');
    old.recordRemote('echo', 260, 289, 1);
    t.ok(old.cheaperOnClient('echo'), 'once its CPU time is known, it is');
  },
);

t.test(
  'issue-16 short-job rule on a quiet machine: the node launch counts on the remote side',
  async (t) => {
    // CI's fresh clone: a 6 ms round trip, and a node spends ~10 ms of CPU
    // launching even `sh -c cp` (launcher, fork, exec, shell). Compared with
    // the round trip alone every helper went out.
    const times = new CommandTimes({
      roundTripMs: 6,
      commands: {
        'cp Makefile': { n: 3, recentMs: [12, 12, 12], recentCpuMs: [10, 11, 9] },
        touch: { n: 1, recentMs: [11], recentCpuMs: [10] },
        'wc -l Makefile': { n: 3, recentMs: [14, 14, 14], recentCpuMs: [13, 13, 13] },
        'cmake -E cmake_echo_color': { n: 3, recentMs: [40, 40, 40], recentCpuMs: [30, 30, 30] },
        'cc -O2 -c': { n: 2, recentMs: [310, 310], recentCpuMs: [300, 300] },
      },
    });
    t.equal(times.launchMs, 10, 'the launch: the median CPU of the trivial kinds (cp, touch)');
    t.same(times.estimate('cp Makefile'), { localMs: 0, remoteMs: 16 });
    t.same(times.estimate('wc -l Makefile'), { localMs: 3, remoteMs: 16 });
    t.same(times.estimate('cmake -E cmake_echo_color'), { localMs: 20, remoteMs: 16 });
    t.same(times.estimate('cc -O2 -c'), { localMs: 290, remoteMs: 16 });
    t.same(times.estimate('ls'), undefined, 'never seen: no estimate');
    t.ok(times.cheaperOnClient('cp Makefile'), 'cp: 0 ms here < 6 + 10 ms there');
    t.ok(times.cheaperOnClient('wc -l Makefile'), 'wc: 3 ms here < 16 ms there');
    t.notOk(times.cheaperOnClient('cmake -E cmake_echo_color'), 'cmake -E: 20 ms here > 16');
    t.notOk(times.cheaperOnClient('cc -O2 -c'), 'a compile goes out');
    // Without a trivial kind seen, there is no launch figure: the round trip alone.
    const noTrivial = new CommandTimes({
      roundTripMs: 6,
      commands: { 'cc -O2 -c': { n: 1, recentMs: [310], recentCpuMs: [300] } },
    });
    t.equal(noTrivial.launchMs, undefined);
    t.same(noTrivial.estimate('cc -O2 -c'), { localMs: 300, remoteMs: 6 });
    // Wall times (no CPU told) are no launch figure.
    const wallOnly = new CommandTimes({
      roundTripMs: 6,
      commands: { touch: { n: 1, recentMs: [11] } },
    });
    t.equal(wallOnly.launchMs, undefined);
    t.notOk(wallOnly.cheaperOnClient('touch'), '11 ms of wall time > 6 ms');
  },
);

t.test('issue-16: short lines on the client are bounded, the rest go out', async (t) => {
  const times = new CommandTimes({
    roundTripMs: 6,
    commands: {
      touch: { n: 1, recentMs: [11], recentCpuMs: [10] },
      'cc -O2 -c': { n: 1, recentMs: [310], recentCpuMs: [300] },
    },
  });
  t.equal(times.place('touch', 0, 2), 'short');
  t.equal(times.place('touch', 1, 2), 'short');
  t.equal(times.place('touch', 2, 2), 'busy', 'two running on a 2-core client: it goes out');
  t.equal(times.place('cc -O2 -c', 0, 2), 'send');
  t.equal(times.place('ls', 0, 2), 'send', 'never seen');
});

t.test('issue-16: -n and -q are dry runs, in every spelling', async (t) => {
  for (const args of [
    ['-n'],
    ['-q'],
    ['-Bn'],
    ['--dry-run'],
    ['--just-print'],
    ['--recon'],
    ['--question'],
    ['-C', 'x', '-n'],
  ]) {
    t.ok(isDryRun(args), args.join(' '));
  }
  for (const args of [
    [],
    ['-B'],
    ['-C', 'n'],
    ['-fnq.mk'],
    ['-k', 'all'],
    ['--', '-n'],
    ['--file', '-n'],
  ]) {
    t.notOk(isDryRun(args), args.join(' '));
  }
});
