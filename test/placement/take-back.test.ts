/**
 * A client never lets its job wait in one node's queue while another node
 * has a free slot: the queued job is taken back and placed again.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster } from '../helpers/cluster.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';

t.test('a job queued behind a busy slot moves to an idle node', async (t) => {
  const cluster = await startCluster(t, 2, 1);
  const [a, b] = cluster.agents as [(typeof cluster.agents)[0], (typeof cluster.agents)[0]];
  // The host list claims 4 slots on A, which really has 1: placement sends
  // both jobs there, and the agent queues the second.
  const hosts = `127.0.0.1:${a.port}/4 127.0.0.1:${b.port}/1`;
  const dir = t.testdir({
    Makefile: 'all: j1 j2\nj1 j2:\n\t@sleep 1; echo "$@ $$MPMAKE_NODE" >> ran.log\n',
  });
  const report = join(dir, 'report.json');
  const r = await runMpmake([`--mp-hosts=${hosts}`, '--mp-quiet', `--mp-report=${report}`, '-j2'], {
    cwd: dir,
    env: cleanEnv(),
  });
  t.equal(r.code, 0, r.stderr.toString());
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  t.equal(rep.jobs.moved, 1, 'one queued job was taken back');
  t.equal(rep.jobs.remote, 2, 'and it still counts once');
  const nodes = readFileSync(join(dir, 'ran.log'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => l.split(' ')[1]);
  t.same(nodes.sort(), [a.id, b.id].sort(), 'one job ran on each node');
});
