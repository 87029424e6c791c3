// A real build on two loopback agents with --mp-trace: the trace has one
// complete event per remote job, on slot lanes that never overlap, agrees
// with the report, and `mpm trace --svg` draws it.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { BuildReport } from '../../lib/coordinator/build-report.js';
import { generateTree } from '../../fixtures/gen-tree.js';
import { startCluster } from '../helpers/cluster.js';
import { repoRoot } from '../helpers/paths.js';
import { cleanEnv, runCapture, runMpmake } from '../helpers/run.js';
import { jobEvents, traceProblems, xmlProblems } from './trace-check.js';

const UNITS = 8;
const SLOTS_PER_AGENT = 2;

t.test('a traced build, and its picture', async (t) => {
  const cluster = await startCluster(t, 2, SLOTS_PER_AGENT);
  const base = t.testdir();
  const work = join(base, 'work');
  generateTree('sleep', work, { units: UNITS, sleepSeconds: 0.2 });
  const traceFile = join(base, 'trace.json');
  const reportFile = join(base, 'report.json');

  const mp = await runMpmake(
    [
      '--mp-quiet',
      `--mp-hosts=${cluster.hosts}`,
      `--mp-trace=${traceFile}`,
      `--mp-report=${reportFile}`,
      '-j4',
    ],
    { cwd: work, env: cleanEnv() },
  );
  t.equal(mp.code, 0, `mpmake builds the tree: ${mp.stderr.toString()}`);
  t.notOk(mp.stderr.includes('\x1b[K'), 'no progress line when stderr is not a terminal');
  t.same(
    readdirSync(base).sort(),
    ['report.json', 'trace.json', 'work'],
    'no temp files left beside them',
  );

  const report = JSON.parse(readFileSync(reportFile, 'utf8')) as BuildReport;
  const trace = JSON.parse(readFileSync(traceFile, 'utf8')) as {
    traceEvents: Array<Record<string, unknown>>;
    otherData: Record<string, unknown>;
  };
  t.same(traceProblems(trace), [], 'valid trace-event JSON; lanes never overlap');
  t.equal(report.jobs.remote, UNITS, 'every sleep ran remotely');
  const jobs = jobEvents(trace);
  t.equal(jobs.length, report.jobs.remote, 'one complete event per remote job');
  t.same(
    jobs.map((e) => (e['args'] as { command: string }).command).sort(),
    Array.from({ length: UNITS }, (_, i) => `sleep 0.2; touch s${String(i).padStart(4, '0')}`),
    'named by their commands',
  );
  for (const e of jobs) {
    t.ok((e['dur'] as number) > 0, `${String(e['name'])} has a duration`);
    t.match(e['args'], { exitCode: 0, signal: null, cwd: work });
  }

  // Per node: the trace's pids follow the report's nodes.
  const processName = new Map(
    trace.traceEvents
      .filter((e) => e['name'] === 'process_name')
      .map((e) => [e['pid'], (e['args'] as { name: string }).name]),
  );
  for (const node of report.nodes) {
    const onNode = jobs.filter((e) => processName.get(e['pid']) === node.id);
    t.equal(onNode.length, node.jobs, `${node.id}: as many events as the report counts`);
    const lanes = new Set(onNode.map((e) => e['tid']));
    t.ok(
      [...lanes].every((tid) => (tid as number) < SLOTS_PER_AGENT),
      `${node.id}: jobs only on its ${SLOTS_PER_AGENT} slot lanes`,
    );
  }

  const par = report.parallelism;
  t.ok(par, 'the report has the parallelism');
  t.ok(par!.peak >= 1 && par!.peak <= report.slots, `peak ${par!.peak} within 1..${report.slots}`);
  t.ok(par!.mean > 0 && par!.mean <= par!.peak, `mean ${par!.mean} within (0, peak]`);
  t.same(trace.otherData['parallelism'], par, 'the trace says the same');

  const svgFile = join(base, 'trace.svg');
  const cli = await runCapture(
    process.execPath,
    [join(repoRoot, 'dist', 'cli', 'mpm.js'), 'trace', traceFile, '--svg', svgFile],
    { cwd: base, env: cleanEnv() },
  );
  t.equal(cli.code, 0, `mpm trace: ${cli.stderr.toString()}`);
  t.match(cli.stdout.toString(), new RegExp(`^${UNITS} jobs on 2 nodes; `));
  t.match(cli.stdout.toString(), /\ncritical path: \d+ jobs, [\d.]+ s:\n/);
  const svg = readFileSync(svgFile, 'utf8');
  t.match(svg, /<svg /);
  t.same(xmlProblems(svg), [], 'well-formed');
  t.equal(svg.match(/<rect class="job"/g)?.length, jobs.length, 'one bar per job');
  t.match(svg, /Critical path: \d+ jobs?, /);
  t.ok((svg.match(/<text class="critical-job"/g)?.length ?? 0) >= 1, 'the path is listed');
});
