// The progress line: what it says, and when it is on the terminal. A fake
// clock and writer; no timers, no timing assertions.
import t from 'tap';
import type { JobEndEvent, JobStartEvent } from '../../lib/coordinator/build-events.js';
import {
  ERASE,
  formatDuration,
  ProgressLine,
  type ProgressLineOptions,
} from '../../lib/report/progress-line.js';

interface Harness {
  line: ProgressLine;
  writes: string[];
  clock: { now: number };
  /** Moves the clock on. */
  advance(ms: number): void;
}

function harness(over: Partial<ProgressLineOptions> = {}): Harness {
  const clock = { now: 1_000_000 };
  const writes: string[] = [];
  const line = new ProgressLine({
    now: () => clock.now,
    write: (text) => writes.push(text),
    columns: () => 120,
    nodes: () => [
      { id: 'nodeA', slots: 4, running: 3, queued: 0 },
      { id: 'nodeB', slots: 2, running: 2, queued: 5 },
    ],
    ...over,
  });
  return { line, writes, clock, advance: (ms) => (clock.now += ms) };
}

let seq = 0;
function start(nodeId = 'nodeA'): JobStartEvent {
  return { seq: ++seq, nodeId, command: 'cc -c x.c', cwd: '/src', requestedAtMs: 0 };
}
function end(s: JobStartEvent, over: Partial<JobEndEvent> = {}): JobEndEvent {
  return { ...s, endedAtMs: 0, code: 0, signal: null, queuedMs: 0, runMs: 0, ...over };
}

t.test('renders done, running, each node and the rate', async (t) => {
  const h = harness();
  const a = start();
  const b = start();
  h.line.jobStart(a);
  h.line.jobStart(b);
  h.advance(2000);
  h.line.jobEnd(end(a));
  t.equal(
    h.line.render(),
    'mpmake: 1 done, 1 running | nodeA 3/4 nodeB 2/2+5q | 0.5 jobs/s',
    '1 job ended in the first 2 s',
  );
  h.line.jobEnd(end(b, { code: 2 }));
  t.match(h.line.render(), /^mpmake: 2 done, 1 failed, 0 running \|/, 'failures are counted');
  h.advance(10_000);
  t.match(h.line.render(), / 0\.0 jobs\/s$/, 'the rate forgets jobs older than its window');
});

t.test('lines run by the shim on the client are counted apart', async (t) => {
  const h = harness();
  const s = start('local');
  h.line.jobStart(s);
  h.line.jobEnd(end(s, { code: null }));
  t.match(h.line.render(), /^mpmake: 1 done, 0 running \| nodeA 3\/4 nodeB 2\/2\+5q local 1 \|/);
});

t.test('the line never wraps: it is cut to the width minus one', async (t) => {
  const h = harness({ columns: () => 30 });
  h.line.jobStart(start());
  t.equal(h.line.render().length, 29);
  h.advance(1000);
  h.line.tick();
  t.equal(h.writes.length, 1);
  t.notOk(h.writes[0]!.includes('\n'), 'no newline, ever');
});

t.test('issue-16: a terminal of 0 columns (a pty no one sized) counts as 80', async (t) => {
  // Under `script` with no terminal, stderr is a 0 x 0 pty: the line was cut to "m".
  const h = harness({ columns: () => 0, expected: { total: 4, from: 'the last build' } });
  h.line.jobStart(start());
  t.equal(
    h.line.render(),
    'mpmake: 0/4 done (0%; total from the last build), 1 running | nodeA 3/4 nodeB 2',
    'cut to 79 characters, not to 1',
  );
});

t.test('drawn only after a quiet spell, erased at every job event', async (t) => {
  const h = harness({ quietMs: 150, minRedrawMs: 200 });
  const a = start();
  h.line.jobStart(a);
  t.same(h.writes, [], 'nothing to erase: it was never drawn');
  h.advance(100);
  h.line.tick();
  t.same(h.writes, [], 'not drawn 100 ms after a job event');
  h.advance(50);
  h.line.tick();
  t.equal(h.writes.length, 1, 'drawn once the build was quiet for 150 ms');
  t.match(h.writes[0]!, /^\r.*\x1b\[K$/, 'carriage return, text, erase to the end of the line');
  t.equal(h.line.visible, true);

  h.line.jobEnd(end(a));
  t.equal(h.writes[1], ERASE, 'a job event erases it first');
  t.equal(h.line.visible, false);
  h.line.jobStart(start());
  t.equal(h.writes.length, 2, 'an erased line is not erased again');
  h.line.tick();
  t.equal(h.writes.length, 2, 'not redrawn right after an event');
});

t.test('redrawn at most every minRedrawMs while quiet', async (t) => {
  const h = harness({ quietMs: 150, minRedrawMs: 200 });
  h.line.jobStart(start());
  h.advance(1000);
  h.line.tick();
  h.advance(100);
  h.line.tick();
  t.equal(h.writes.length, 1, 'not redrawn 100 ms later');
  h.advance(100);
  h.line.tick();
  t.equal(h.writes.length, 2, 'redrawn 200 ms later');
  t.notOk(
    h.writes.some((w) => w.includes('\n')),
    'never a newline',
  );
});

t.test('after a line given back to the client, it stays off for localHoldMs', async (t) => {
  const h = harness({ quietMs: 150, localHoldMs: 2000 });
  h.line.jobStart(start());
  const s = start('local');
  h.line.jobStart(s);
  h.line.jobEnd(end(s, { code: null }));
  h.advance(1000);
  h.line.tick();
  t.same(h.writes, [], 'the shim may be writing');
  h.advance(1000);
  h.line.tick();
  t.equal(h.writes.length, 1, 'drawn again after the hold');
});

t.test('not drawn while none of our jobs runs: make may be printing', async (t) => {
  const h = harness();
  h.advance(1000);
  h.line.tick();
  t.same(h.writes, [], 'not while make reads its makefiles');
  const a = start();
  h.line.jobStart(a);
  h.advance(1000);
  h.line.tick();
  t.equal(h.writes.length, 1, 'drawn while a job runs');
  h.line.jobEnd(end(a));
  h.advance(1000);
  h.line.tick();
  t.same(h.writes.slice(1), [ERASE], 'erased at its end, and not drawn again with none running');
});

t.test('finish erases it for good', async (t) => {
  const h = harness();
  h.line.jobStart(start());
  h.advance(1000);
  h.line.tick();
  h.line.finish();
  t.same(h.writes.slice(1), [ERASE]);
  h.advance(10_000);
  h.line.tick();
  t.equal(h.writes.length, 2, 'nothing after finish');
  t.equal(h.line.visible, false);
  const never = harness();
  never.line.finish();
  t.same(never.writes, [], 'a line never drawn is not erased');
});

t.test(
  'issue-16: with a total from the last build, done/total, percentage, time left',
  async (t) => {
    const h = harness({ expected: { total: 8, from: 'the last build' }, nodes: () => [] });
    t.equal(
      h.line.render(),
      'mpmake: 0/8 done (0%; total from the last build), 0 running | 0.0 jobs/s',
    );
    const jobs = [start(), start(), start()];
    for (const j of jobs) h.line.jobStart(j);
    h.advance(4000);
    h.line.jobEnd(end(jobs[0]!));
    h.line.jobEnd(end(jobs[1]!));
    t.equal(
      h.line.render(),
      'mpmake: 2/8 done (25%, ~12 s left; total from the last build), 1 running | 0.5 jobs/s',
      '2 lines in 4 s: 6 more take about 12 s',
    );
    for (let i = 0; i < 7; i++) h.line.jobEnd(end(start()));
    t.match(h.line.render(), /^mpmake: 9\/8\+ done \(100%, more than the last build\),/);
  },
);

t.test('issue-16: without a total, the line says why', async (t) => {
  const h = harness({
    noTotal: 'no history for this tree; make -n took over 1 s',
    columns: () => 200,
  });
  h.line.jobStart(start());
  t.equal(
    h.line.render(),
    'mpmake: 0 done (no total: no history for this tree; make -n took over 1 s), 1 running | nodeA 3/4 nodeB 2/2+5q | 0.0 jobs/s',
  );
});

t.test('issue-16: durations read as a person would say them', async (t) => {
  t.same([0, 12_400, 185_000, 3_725_000].map(formatDuration), [
    '0 s',
    '12 s',
    '3 min 5 s',
    '1 h 02 min',
  ]);
});
