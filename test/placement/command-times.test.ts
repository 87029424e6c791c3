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
  t.notOk(times.shorterThanRoundTrip('touch'), 'nothing known yet: send it');
  times.recordRemote('touch', 1, 9); // a round trip of 8 ms
  times.recordRemote('cc -c', 400, 410);
  times.recordRemote('cc -c', 300, 306);
  t.equal(times.roundTripMs, 8, 'the median round trip');
  t.ok(times.shorterThanRoundTrip('touch'), '1 ms < 8 ms: stays local');
  t.notOk(times.shorterThanRoundTrip('cc -c'), 'compiles go to nodes');
  t.notOk(times.shorterThanRoundTrip('echo'), 'never seen: send it');
  times.recordRemote('touch', 20, 28);
  times.recordRemote('touch', 30, 38);
  t.notOk(times.shorterThanRoundTrip('touch'), 'once it typically runs longer, it goes to nodes');
  const next = new CommandTimes(JSON.parse(JSON.stringify(times.toJSON())));
  t.equal(next.roundTripMs, 8, 'the next build starts with what this one learnt');
  t.notOk(next.shorterThanRoundTrip('touch'));
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
    t.ok(times.shorterThanRoundTrip('touch'), '2 ms of CPU < a 29 ms round trip: stays local');
    t.notOk(times.shorterThanRoundTrip('cc -O2 -o'), '160 ms of CPU: goes to a node');
    // A run whose node could not tell its CPU time (a pty job) keeps what is known.
    times.recordRemote('touch', 250, 279);
    t.same(times.toJSON().commands['touch']?.recentCpuMs, [2, 2, 2, 2, 2]);
    // A history from before CPU times (wall only) still decides by wall time.
    const old = new CommandTimes({
      roundTripMs: 29,
      commands: { echo: { n: 1, recentMs: [240] } },
    });
    t.notOk(old.shorterThanRoundTrip('echo'), 'wall time only: 240 ms is not short');
    old.recordRemote('echo', 260, 289, 1);
    t.ok(old.shorterThanRoundTrip('echo'), 'once its CPU time is known, it is');
  },
);

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
