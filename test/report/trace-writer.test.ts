// The trace file from recorded events: the trace-event format, slot
// lanes, what a job's args say, and a file written whole.
import { EventEmitter } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { BuildEvents, JobEndEvent } from '../../lib/coordinator/build-events.js';
import type { BuildReport } from '../../lib/coordinator/build-report.js';
import { summaryLine } from '../../lib/coordinator/build-report.js';
import { attachObservers } from '../../lib/report/observers.js';
import { eventName, NAME_MAX_CHARS, writeTraceFile } from '../../lib/report/trace-writer.js';
import { jobEvents, traceProblems } from './trace-check.js';

const T0 = 1_700_000_000_000;

function report(): BuildReport {
  return {
    version: 1,
    exitCode: 0,
    signal: null,
    wallMs: 1000,
    mode: 'cluster',
    jobs: { total: 6, remote: 5, local: 1, retried: 0, failed: 1 },
    nodes: [
      { id: 'nodeA', address: '10.0.0.1:7543', slots: 2, jobs: 3 },
      { id: 'nodeB', address: '10.0.0.2:7543', slots: 1, jobs: 2 },
    ],
    leftOut: [],
    slots: 3,
  };
}

/** A build of six lines on two nodes and the client, on a fake clock. */
function record(trace: string | undefined): { report: BuildReport } {
  const clock = { now: T0 };
  const events = new EventEmitter<BuildEvents>();
  const cluster = {
    nodeLoads: () => [
      { id: 'nodeA', slots: 2, running: 0, queued: 0, loadavg1: 0 },
      { id: 'nodeB', slots: 1, running: 0, queued: 0, loadavg1: 0 },
    ],
  };
  const observers = attachObservers(events, cluster, {
    trace,
    progress: false,
    now: () => clock.now,
  });
  const job = (
    seq: number,
    nodeId: string,
    requestedAt: number,
    endedAt: number,
    runMs: number,
    over: Partial<JobEndEvent> = {},
  ): void => {
    const start = {
      seq,
      nodeId,
      command: `step ${seq}`,
      cwd: '/src',
      requestedAtMs: T0 + requestedAt,
    };
    events.emit('job-start', start);
    events.emit('job-end', {
      ...start,
      endedAtMs: T0 + endedAt,
      code: 0,
      signal: null,
      queuedMs: 5,
      runMs,
      ...over,
    });
  };
  job(1, 'nodeA', 0, 500, 480);
  job(2, 'nodeA', 10, 300, 280);
  job(3, 'nodeA', 310, 900, 580, { code: 1 });
  job(4, 'nodeB', 20, 400, 370, { command: `cc ${'-Dx '.repeat(40)}\\\n  -c y.c` });
  job(5, 'nodeB', 400, 420, 0, { code: 127, runMs: 0, error: 'agent lost (MPM_ERR_AGENT_LOST)' });
  job(6, 'local', 450, 450, 0, { code: null, queuedMs: 0 });
  clock.now = T0 + 1000;
  const r = report();
  observers.finish(r);
  return { report: r };
}

t.test('the trace is valid trace-event JSON with a lane per slot', async (t) => {
  const dir = t.testdir();
  const file = join(dir, 'trace.json');
  const { report } = record(file);
  t.same(readdirSync(dir), ['trace.json'], 'written in place: no temp file left');
  const trace = JSON.parse(readFileSync(file, 'utf8')) as {
    traceEvents: Array<Record<string, unknown>>;
    otherData: Record<string, unknown>;
  };
  t.same(traceProblems(trace), []);
  const jobs = jobEvents(trace);
  t.equal(jobs.length, 4, 'one complete event per job that ran on a node');
  const byName = new Map(jobs.map((e) => [e['name'], e]));
  t.match(byName.get('step 1'), { pid: 0, tid: 0, ts: 20_000, dur: 480_000 });
  t.match(byName.get('step 2'), { pid: 0, tid: 1, ts: 20_000, dur: 280_000 });
  t.match(byName.get('step 3'), {
    pid: 0,
    tid: 1,
    ts: 320_000,
    args: { exitCode: 1, waitMs: 10, queuedMs: 5, dispatchMs: 5, runMs: 580, command: 'step 3' },
  });
  const long = jobs.find((e) => e['pid'] === 1)!;
  t.equal((long['name'] as string).length, NAME_MAX_CHARS, 'long names are cut');
  t.match(long['args'], { command: /-c y\.c$/ }, 'the whole command is in args');

  const names = trace.traceEvents.filter((e) => e['name'] === 'process_name');
  t.same(
    names.map((e) => [e['pid'], (e['args'] as { name: string }).name]),
    [
      [0, 'nodeA'],
      [1, 'nodeB'],
      [2, 'local (run by the shim on the client)'],
      [3, 'build'],
    ],
    'a process per node, then local, then the build',
  );
  const slots = trace.traceEvents.filter((e) => e['name'] === 'thread_name' && e['pid'] === 0);
  t.same(
    slots.map((e) => (e['args'] as { name: string }).name),
    ['slot 0', 'slot 1'],
  );
  const instants = trace.traceEvents.filter((e) => e['ph'] === 'i');
  t.same(
    instants.map((e) => [e['cat'], e['pid']]),
    [
      ['error', 1],
      ['local', 2],
    ],
    'lines without a seen run are instants',
  );
  t.ok(
    trace.traceEvents.some((e) => e['ph'] === 'C' && e['name'] === 'running jobs'),
    'a running-jobs counter',
  );

  // Running: [20,500) [20,300) [320,900) on A, [30,400) on B: 1710 ms in 1000.
  t.same(report.parallelism, { peak: 3, mean: 1.71 });
  t.same(trace.otherData['parallelism'], report.parallelism);
  t.match(trace.otherData, { endUs: 1_000_000, slots: 3, exitCode: 0 });
  t.match(summaryLine(report), /, parallelism peak 3 mean 1\.71$/);
});

t.test('without --mp-trace, only the report gets the parallelism', async (t) => {
  const { report } = record(undefined);
  t.same(report.parallelism, { peak: 3, mean: 1.71 });
});

t.test('an unwritable trace is one line, not a failed build', async (t) => {
  const dir = t.testdir();
  const writes: string[] = [];
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string) => {
    writes.push(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    record(join(dir, 'no', 'such', 'dir', 'trace.json'));
  } finally {
    process.stderr.write = write;
  }
  t.match(writes.join(''), /^mpmake: cannot write the trace .*trace\.json: /);
  t.same(readdirSync(dir), [], 'nothing left behind');
});

t.test('writeTraceFile replaces a file whole', async (t) => {
  const dir = t.testdir({ 'trace.json': 'old' });
  const file = join(dir, 'trace.json');
  const trace = {
    traceEvents: [],
    displayTimeUnit: 'ms' as const,
    otherData: {
      tool: 'mpmake' as const,
      traceVersion: 1 as const,
      startedAt: new Date(T0).toISOString(),
      endUs: 0,
      exitCode: 0,
      signal: null,
      slots: 1,
      nodes: [],
      jobs: { total: 0, remote: 0, local: 0, retried: 0, failed: 0 },
      parallelism: { peak: 0, mean: 0 },
    },
  };
  writeTraceFile(file, trace);
  t.same(JSON.parse(readFileSync(file, 'utf8')), trace);
  t.same(readdirSync(dir), ['trace.json']);
});

t.test('event names: one line, cut with an ellipsis', async (t) => {
  t.equal(eventName('  a\\\n   b\tc  '), 'a b c');
  t.equal(eventName(''), '(empty line)');
  const cut = eventName('x'.repeat(200));
  t.equal(cut.length, NAME_MAX_CHARS);
  t.ok(cut.endsWith('…'));
});
