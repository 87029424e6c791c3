// The SVG picture of a trace: a bar per job, the parallelism chart, and the
// critical path outlined and listed.
import t from 'tap';
import type { JobSpan } from '../../lib/report/job-span.js';
import { assignLanes } from '../../lib/report/slot-lanes.js';
import { traceSummary } from '../../lib/report/trace-command.js';
import { readTraceModel } from '../../lib/report/trace-model.js';
import { renderTraceSvg } from '../../lib/report/trace-svg.js';
import { buildTrace } from '../../lib/report/trace-writer.js';
import { xmlProblems } from './trace-check.js';

const T0 = 1_700_000_000_000;

function span(
  seq: number,
  nodeId: string,
  startMs: number,
  endMs: number,
  command: string,
): JobSpan {
  return {
    seq,
    nodeId,
    command,
    cwd: '/src',
    requestedAtMs: T0 + startMs,
    startMs: T0 + startMs,
    endMs: T0 + endMs,
    queuedMs: 0,
    runMs: endMs - startMs,
    code: 0,
    signal: null,
    timed: true,
  };
}

/** gen.h, then two compiles side by side, then the link: the path is gen, cc b, link. */
function trace(): unknown {
  const spans = [
    span(1, 'nodeA', 0, 1000, 'sh gen.sh > gen.h'),
    span(2, 'nodeA', 1000, 2000, 'cc -c a.c'),
    span(3, 'nodeB', 1010, 4000, 'cc -c b.c -DQ="<&>"\x01'),
    span(4, 'nodeA', 4020, 4500, 'cc -o prog a.o b.o'),
  ];
  const nodes = [
    { id: 'nodeA', slots: 2 },
    { id: 'nodeB', slots: 2 },
  ];
  const laned = assignLanes(spans, () => 2);
  return buildTrace({
    originMs: T0,
    endMs: T0 + 5000,
    nodes,
    spans,
    laned,
    report: {
      exitCode: 0,
      signal: null,
      slots: 4,
      jobs: { total: 4, remote: 4, local: 0, retried: 0, failed: 0 },
      parallelism: { peak: 2, mean: 1.09 },
    },
  });
}

const count = (text: string, re: RegExp): number => text.match(re)?.length ?? 0;

t.test('a bar per job, a row per slot, the critical path listed', async (t) => {
  const svg = renderTraceSvg(trace());
  t.match(svg, /^<\?xml [^>]*>\n<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.same(xmlProblems(svg), [], 'tags balance; text is escaped');
  t.equal(count(svg, /<rect class="job"/g), 4, 'one bar per job');
  t.equal(count(svg, /<rect class="job"[^>]*stroke="#000"/g), 3, 'three outlined');
  t.equal(count(svg, /<text class="critical-job"/g), 3, 'and listed');
  t.match(svg, /Critical path: 3 jobs, 4\.47 s of 5\.00 s/);
  t.match(svg, />slot 1</, 'idle slots have rows too');
  t.match(svg, /cc -c b\.c -DQ=&quot;&lt;&amp;&gt;&quot;\?/, 'escaped, control character replaced');
  t.notOk(svg.includes('\x01'));
  t.match(svg, /<path class="parallelism"/, 'the step chart');
  t.match(svg, /-j 4/, 'the slots line');
  t.match(
    svg,
    /<title>sh gen\.sh &gt; gen\.h\nnodeA, slot 0: started 0\.00 s, ran 1\.00 s, exit 0<\/title>/,
  );
});

t.test('the model and the summary read the same trace', async (t) => {
  const model = readTraceModel(trace());
  t.same(
    model.rows.map((r) => `${r.node}/${r.slot}`),
    ['nodeA/slot 0', 'nodeA/slot 1', 'nodeB/slot 0', 'nodeB/slot 1'],
  );
  t.equal(model.endUs, 5_000_000);
  t.equal(model.slots, 4);
  const text = traceSummary(trace());
  t.match(
    text,
    /^4 jobs on 2 nodes; make ran 5\.00 s; jobs running at once: peak 2, mean 1\.09 of 4 slots\n/,
  );
  t.match(
    text,
    /critical path: 3 jobs, 4\.47 s:\n +1\.00 s  sh gen\.sh > gen\.h\n +2\.99 s  cc -c b\.c/,
  );
});

t.test('an empty trace still draws; anything else is refused', async (t) => {
  const svg = renderTraceSvg({ traceEvents: [] });
  t.same(xmlProblems(svg), []);
  t.equal(count(svg, /<rect class="job"/g), 0);
  t.match(svg, /No jobs in this trace/);
  t.throws(() => renderTraceSvg({ events: [] }), /no "traceEvents" array/);
  t.throws(() => renderTraceSvg('nope'), /no "traceEvents" array/);
  const plain = renderTraceSvg([{ name: 'x', ph: 'X', ts: 0, dur: 10, pid: 7, tid: 3 }]);
  t.equal(count(plain, /<rect class="job"/g), 1, 'the array format, with unnamed tracks');
  t.match(plain, />pid 7</);
});
