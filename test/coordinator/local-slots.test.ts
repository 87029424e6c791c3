/** `localhost/N`: the client's own slots, served by an agent inside mpmake. */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster } from '../helpers/cluster.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';

t.test('jobs run on the client slots too, and are counted as local', async (t) => {
  const cluster = await startCluster(t, 1, 1);
  const names = Array.from({ length: 6 }, (_, i) => `t${i}`);
  const dir = t.testdir({
    Makefile: `all: ${names.join(' ')}\n${names.join(' ')}:\n\t@sleep 0.3; echo "$$MPMAKE_NODE" > $@\n`,
  });
  const report = join(dir, 'report.json');
  const r = await runMpmake(
    [`--mp-hosts=${cluster.hosts} localhost/2`, '--mp-quiet', `--mp-report=${report}`, '-j'],
    { cwd: dir, env: cleanEnv() },
  );
  t.equal(r.code, 0, r.stderr.toString());
  const ran = names.map((n) => readFileSync(join(dir, n), 'utf8').trim());
  t.ok(ran.includes('local'), `some jobs ran on the client: ${ran.join(' ')}`);
  t.ok(ran.includes('test-agent-0'), 'and some on the agent');
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  t.equal(rep.jobs.local, ran.filter((n) => n === 'local').length, 'counted as local');
  t.equal(rep.jobs.remote + rep.jobs.local, names.length);
  t.equal(rep.slots, 3, 'bare -j: the agent slot and the two local ones');
});
