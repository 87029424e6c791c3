// `mpm top` on a pseudo-terminal: it draws every node with its jobs, quits
// on `q` with status 0, and gives the terminal back (main screen, cursor).
import t from 'tap';
import { LEAVE_SCREEN } from '../../lib/cluster-view/top-screen.js';
import { TestClient } from '../agent/client.js';
import { startCluster } from '../helpers/cluster.js';
import { markerSeconds } from '../helpers/procs.js';
import { cleanEnv } from '../helpers/run.js';
import { killSleepers, mpmCli, PtyRun, runMpm } from './mpm.js';

t.test('mpm top', async (t) => {
  const cluster = await startCluster(t, 2, 2);
  const cwd = t.testdir();
  // A job on the first node, from a client of our own, for top to show.
  const marker = markerSeconds(50);
  t.teardown(() => killSleepers(marker));
  // It sends no heartbeats: without a long timeout the agent hangs up after
  // 4 s of silence, and a loaded machine takes longer than that to get here.
  const client = await TestClient.ready(t, cluster.agents[0]!.port, undefined, {
    heartbeatTimeoutMs: 600_000,
  });
  client.submit({ argv: ['sleep', marker] });

  t.test('live, on a terminal', async (t) => {
    const top = PtyRun.start(
      t,
      process.execPath,
      [mpmCli, 'top', '--hosts', cluster.hosts, '--interval', '200'],
      { cwd, env: cleanEnv({ TERM: 'xterm-256color' }) },
    );
    await top.waitFor(
      (out) => out.includes('\x1b[?1049h') && out.includes('\x1b[?25l'),
      'the alternate screen, cursor hidden',
    );
    await top.waitFor(
      (out) =>
        cluster.agents.every((a) =>
          new RegExp(`\\n${a.id} +127\\.0\\.0\\.1:${a.port} +up`).test(out),
        ),
      'a row for each node, up',
    );
    await top.waitFor((out) => out.includes(`sleep ${marker}`), 'the running job under its node');
    const screen = top.output.slice(top.output.lastIndexOf('\x1b[H'));
    const rowOf = (id: string): number => screen.split('\n').findIndex((l) => l.startsWith(id));
    const jobRow = screen.split('\n').findIndex((l) => l.includes(`sleep ${marker}`));
    t.ok(
      rowOf(cluster.agents[0]!.id) < jobRow && jobRow < rowOf(cluster.agents[1]!.id),
      'the job is listed under the node it runs on',
    );
    t.match(screen, /@test pid \d+/, 'with the client that sent it');

    top.term.write('q');
    const end = await top.finish();
    t.equal(end.exitCode, 0, 'q: exit 0');
    t.ok(top.output.endsWith(LEAVE_SCREEN), 'ends by leaving the alternate screen, cursor shown');
  });

  t.test('Ctrl-C quits too', async (t) => {
    const top = PtyRun.start(t, process.execPath, [mpmCli, 'top', '--hosts', cluster.hosts], {
      cwd,
    });
    await top.waitFor((out) => out.includes(cluster.agents[1]!.id), 'the first frame');
    top.term.write('\x03');
    const end = await top.finish();
    t.equal(end.exitCode, 0);
    t.ok(top.output.endsWith(LEAVE_SCREEN));
  });

  t.test('without a terminal: one snapshot', async (t) => {
    const r = await runMpm(['top', '--hosts', cluster.hosts], { cwd });
    t.equal(r.code, 0);
    const out = r.stdout.toString();
    t.notMatch(out, /\x1b/, 'no escape sequences');
    for (const a of cluster.agents)
      t.match(out, new RegExp(`\\n${a.id} +127\\.0\\.0\\.1:${a.port} +up`));
    t.match(out, `sleep ${marker}`);
  });

  t.test('a bad --interval is a usage error', async (t) => {
    const r = await runMpm(['top', '--hosts', cluster.hosts, '--interval', 'soon'], { cwd });
    t.equal(r.code, 2);
    t.match(r.stderr.toString(), /--interval/);
  });
});
