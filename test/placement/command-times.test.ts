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
