// The pure pieces under the trace and the report: job spans from events,
// slot lanes, parallelism, the critical path.
import t from 'tap';
import type { JobEndEvent } from '../../lib/coordinator/build-events.js';
import { criticalPath } from '../../lib/report/critical-path.js';
import { jobSpan, type JobSpan } from '../../lib/report/job-span.js';
import { parallelism, runningSteps } from '../../lib/report/parallelism.js';
import { assignLanes, LANE_JITTER_MS } from '../../lib/report/slot-lanes.js';

function end(over: Partial<JobEndEvent>): JobEndEvent {
  return {
    seq: 1,
    nodeId: 'a',
    command: 'cc -c x.c',
    cwd: '/src',
    requestedAtMs: 1000,
    endedAtMs: 2000,
    code: 0,
    signal: null,
    queuedMs: 10,
    runMs: 900,
    ...over,
  };
}

function span(seq: number, nodeId: string, startMs: number, endMs: number): JobSpan {
  return jobSpan(
    end({ seq, nodeId, requestedAtMs: startMs, endedAtMs: endMs, runMs: endMs - startMs }),
  );
}

t.test('a job starts runMs before its exit arrived, never before its request', async (t) => {
  const s = jobSpan(end({}));
  t.equal(s.startMs, 1100);
  t.equal(s.endMs, 2000);
  t.equal(s.timed, true);
  const rounded = jobSpan(end({ requestedAtMs: 1500, endedAtMs: 1600, runMs: 101 }));
  t.equal(rounded.startMs, 1500, 'clamped to the request');
  const local = jobSpan(end({ nodeId: 'local', code: null, runMs: 0, queuedMs: 0 }));
  t.equal(local.timed, false, 'a line run by the shim has no seen duration');
  const failed = jobSpan(end({ code: 127, runMs: 0, error: 'lost (MPM_ERR_AGENT_LOST)' }));
  t.equal(failed.timed, false, 'a line that never ran has none either');
  t.equal(failed.error, 'lost (MPM_ERR_AGENT_LOST)');
});

t.test('lanes: the lowest free slot; overlapping jobs never share one', async (t) => {
  const spans = [
    span(1, 'a', 0, 100),
    span(2, 'a', 10, 50),
    span(3, 'a', 60, 200), // lane 1 is free again at 50
    span(4, 'a', 100, 150), // lane 0 is free again at 100 (touching is not overlapping)
    span(5, 'b', 0, 10),
    jobSpan(end({ seq: 6, nodeId: 'local', code: null, runMs: 0 })),
  ];
  const laned = assignLanes(spans, () => 2);
  const lane = (seq: number): number | undefined => laned.find((l) => l.span.seq === seq)?.lane;
  t.same([1, 2, 3, 4, 5].map(lane), [0, 1, 1, 0, 0]);
  t.notOk(
    laned.some((l) => l.span.seq === 6),
    'untimed jobs get no lane',
  );
});

t.test('lanes: jitter is clipped, real overlap beyond the slots opens a lane', async (t) => {
  const jitter = assignLanes(
    [span(1, 'a', 0, 100), span(2, 'a', 100 - LANE_JITTER_MS, 200)],
    () => 1,
  );
  t.same(
    jitter.map((l) => [l.lane, l.startMs]),
    [
      [0, 0],
      [0, 100],
    ],
    'a start a few ms early waits for the lane',
  );
  const real = assignLanes([span(1, 'a', 0, 100), span(2, 'a', 50, 200)], () => 1);
  t.same(
    real.map((l) => l.lane),
    [0, 1],
  );
});

t.test('parallelism: peak and time-weighted mean', async (t) => {
  const intervals = [
    { start: 0, end: 10 },
    { start: 0, end: 5 },
    { start: 5, end: 10 },
    { start: 10, end: 20 },
  ];
  t.same(runningSteps(intervals), [
    { t: 0, n: 2 },
    { t: 10, n: 1 },
    { t: 20, n: 0 },
  ]);
  t.same(parallelism(intervals), { peak: 2, mean: 1.5 });
  t.same(parallelism(intervals, { from: 0, to: 40 }), { peak: 2, mean: 0.75 }, 'idle time counts');
  t.same(parallelism([]), { peak: 0, mean: 0 });
  t.same(parallelism([{ start: 3, end: 3 }]), { peak: 0, mean: 0 }, 'empty intervals run nothing');
});

t.test('critical path: the longest chain by run time', async (t) => {
  const jobs = [
    { id: 'a', start: 0, end: 10 },
    { id: 'b', start: 0, end: 3 },
    { id: 'c', start: 3, end: 4 },
    { id: 'd', start: 10, end: 30 },
    { id: 'e', start: 4, end: 12 },
    { id: 'f', start: 29, end: 31 }, // within epsilon 1 of d's end
  ];
  t.same(
    criticalPath(jobs, 0).map((j) => j.id),
    ['a', 'd'],
  );
  t.same(
    criticalPath(jobs, 1).map((j) => j.id),
    ['a', 'd', 'f'],
    'epsilon lets a job start just before the previous one ended',
  );
  t.same(criticalPath([], 0), []);
  const many = Array.from({ length: 2000 }, (_, i) => ({ start: i, end: i + 1 }));
  t.equal(criticalPath(many, 0).length, 2000, 'a long serial chain');
});
