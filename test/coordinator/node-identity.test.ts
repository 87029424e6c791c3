// Node identity. Measured bug: three agents on three machines with the same
// host name gave `26 jobs: 26 remote (vm:7543 26, vm:7543 26, vm:7543 26)`,
// and one agent listed as 127.0.0.1:7541 and localhost:7541 counted as two
// nodes. Loopback reproduces both: agents started with one --name, and one
// agent under two addresses.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { spawnLocalAgent, type LocalAgent } from '../../lib/agent/spawn-agent.js';
import type { NodeStatus } from '../../lib/cluster-view/node-status.js';
import { identify } from '../../lib/coordinator/node-identity.js';
import type { BuildReport } from '../../lib/coordinator/build-report.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';
import { runMpm } from '../cluster-view/mpm.js';

const readReport = (path: string): BuildReport =>
  JSON.parse(readFileSync(path, 'utf8')) as BuildReport;

const MAKEFILE =
  'all: ' +
  Array.from({ length: 9 }, (_, i) => `o${i}`).join(' ') +
  '\no%:\n\tsleep 0.2; echo $@ > $@\n';

async function agents(t: Test, n: number, name?: string): Promise<LocalAgent[]> {
  const list: LocalAgent[] = [];
  t.teardown(() => Promise.all(list.map((a) => a.stop().catch(() => {}))));
  for (let i = 0; i < n; i++) {
    list.push(await spawnLocalAgent({ slots: 1, env: cleanEnv(), ...(name ? { id: name } : {}) }));
  }
  return list;
}

t.test('identify: aliases by instance, shared names qualified', async (t) => {
  const r = identify([
    { address: 'a:1', name: 'vm:7543', instance: 'x' },
    { address: 'b:1', name: 'vm:7543', instance: 'y' },
    { address: 'c:1', name: 'other', instance: 'z' },
    { address: 'localhost:1', name: 'vm:7543', instance: 'x' },
  ]);
  t.same(
    [...r.ids],
    [
      ['a:1', 'vm:7543@a:1'],
      ['b:1', 'vm:7543@b:1'],
      ['c:1', 'other'],
    ],
  );
  t.same(r.aliases, [{ address: 'localhost:1', sameAs: 'a:1', id: 'vm:7543@a:1' }]);
});

t.test('agents sharing a name are told apart in summary, report and status', async (t) => {
  const list = await agents(t, 3, 'vm:7543');
  const hosts = list.map((a) => a.hostSpec).join(' ');
  const cwd = t.testdir({ Makefile: MAKEFILE });
  const reportFile = join(cwd, 'report.json');
  const r = await runMpmake(['-j9', `--mp-hosts=${hosts}`, `--mp-report=${reportFile}`], {
    cwd,
    env: cleanEnv(),
  });
  t.equal(r.code, 0, `mpmake builds; stderr: ${r.stderr}`);
  const report = readReport(reportFile);
  const ids = report.nodes.map((n) => n.id);
  t.same(
    ids,
    list.map((a) => `vm:7543@127.0.0.1:${a.port}`),
    'each node id is the name qualified by its address',
  );
  const summary =
    r.stderr
      .toString()
      .split('\n')
      .find((l) => / jobs: /.test(l)) ?? '';
  for (const id of ids) t.match(summary, id, `the summary names ${id}`);

  const status = await runMpm(['status', '--json', '--hosts', hosts], { cwd });
  const nodes = JSON.parse(status.stdout.toString()) as NodeStatus[];
  t.same(
    nodes.map((n) => n.nodeId),
    ids,
    'mpm status uses the same ids',
  );
});

t.test('one agent under two addresses is one node, said once', async (t) => {
  const [agent] = await agents(t, 1, 'solo');
  const hosts = `127.0.0.1:${agent!.port}/2 localhost:${agent!.port}/2`;
  const cwd = t.testdir({ Makefile: MAKEFILE });
  const reportFile = join(cwd, 'report.json');
  const r = await runMpmake(['-j4', `--mp-hosts=${hosts}`, `--mp-report=${reportFile}`], {
    cwd,
    env: cleanEnv(),
  });
  t.equal(r.code, 0, `mpmake builds; stderr: ${r.stderr}`);
  const lines = r.stderr.toString().split('\n');
  const said = lines.filter((l) => l.includes('counting it once'));
  t.equal(said.length, 1, `said once: ${JSON.stringify(lines)}`);
  t.match(said[0], `localhost:${agent!.port} is the agent solo already reached at 127.0.0.1:`);
  const report = readReport(reportFile);
  t.same(
    report.nodes.map((n) => n.id),
    ['solo'],
    'one node in the report',
  );
  t.equal(report.nodes[0]!.slots, 2, 'its slots counted once');
  t.same(report.sameAgent, [
    { address: `localhost:${agent!.port}`, sameAs: `127.0.0.1:${agent!.port}`, id: 'solo' },
  ]);
  t.equal(report.nodes[0]!.jobs, 9, 'all jobs on it');

  const status = await runMpm(['status', '--json', '--hosts', hosts], { cwd });
  const nodes = JSON.parse(status.stdout.toString()) as NodeStatus[];
  t.equal(nodes.length, 1, 'mpm status lists it once');
  t.match(nodes[0], { nodeId: 'solo', alsoAt: [`localhost:${agent!.port}`], clients: [] });
  const table = await runMpm(['status', '--hosts', hosts], { cwd });
  t.match(table.stdout.toString(), `also reached as localhost:${agent!.port}`);
  t.match(table.stdout.toString(), /1 of 1 node up: 1 slots/);
});
