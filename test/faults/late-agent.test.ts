/**
 * Issue 15: under --mp-no-fallback a line found no agent ready and failed
 * at once (MPM_ERR_NO_AGENTS), though the agent was alive, only slow to
 * finish its handshake. Now a line waits, in order, while a node may still
 * come, and fails at once only when every node is out for good.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnLocalAgent } from '../../lib/agent/spawn-agent.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';

const N = 4;
const makefile =
  `all: ${Array.from({ length: N }, (_, i) => `t${i}`).join(' ')}\n` +
  Array.from({ length: N }, (_, i) => `t${i}:\n\t@sleep 0.3; echo built > $@\n`).join('');

/**
 * Holds a loopback port until mpmake's first connection arrives there (closed
 * without a word, as an agent that never finished its handshake), then frees it.
 */
async function portUntilFirstDial(): Promise<{ port: number; dialed: Promise<void> }> {
  let seen: () => void = () => {};
  const dialedOnce = new Promise<void>((resolve) => (seen = resolve));
  const server = createServer((socket) => {
    socket.destroy();
    seen();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const dialed = dialedOnce.then(
    () => new Promise<void>((resolve) => server.close(() => resolve())),
  );
  return { port, dialed };
}

t.test('an agent that starts listening late takes every job (--mp-no-fallback)', async (t) => {
  const { port, dialed } = await portUntilFirstDial();
  const dir = t.testdir({ Makefile: makefile });
  const report = join(dir, 'report.json');
  const build = runMpmake(
    [`--mp-hosts=127.0.0.1:${port}/2`, `--mp-report=${report}`, '--mp-no-fallback', '-j2'],
    { cwd: dir, env: cleanEnv() },
  );
  // The agent starts only after mpmake found no agent there, and a moment later.
  await dialed;
  await sleep(1000);
  const agent = await spawnLocalAgent({ slots: 2, listen: `127.0.0.1:${port}`, env: cleanEnv() });
  t.teardown(() => agent.stop());
  const r = await build;
  const err = r.stderr.toString();
  t.equal(r.code, 0, err);
  t.match(err, `leaving out 127.0.0.1:${port}`, 'the agent was not there at the start');
  t.notMatch(err, /MPM_ERR_NO_AGENTS/);
  for (let i = 0; i < N; i++) t.equal(readFileSync(join(dir, `t${i}`), 'utf8'), 'built\n');
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  t.equal(rep.jobs.remote, N, 'every job ran on the agent');
});

t.test('a host refused for good (wrong secret) fails at once with the reason', async (t) => {
  const dir = t.testdir({ Makefile: makefile });
  const other = join(dir, 'other-secret');
  writeFileSync(other, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  const agent = await spawnLocalAgent({ slots: 2, secretFile: other, env: cleanEnv() });
  t.teardown(() => agent.stop());
  const r = await runMpmake([`--mp-hosts=${agent.hostSpec}`, '--mp-no-fallback', '-j2'], {
    cwd: dir,
    env: cleanEnv(),
  });
  const err = r.stderr.toString();
  t.not(r.code, 0, 'the build fails');
  t.match(err, /refused our secret/, 'says why the host is out');
  t.match(err, /MPM_ERR_NO_AGENTS/);
  t.notMatch(err, /became ready within/, 'did not wait for a host that cannot come');
});

// Issue 15: at load 22-28 twelve builds lost their agent mid-job (late
// heartbeats); the job's re-run found no node ready and, under
// --mp-no-fallback, failed at once ("no agent is reachable") though the agent
// came back a moment later. Now the job waits for a node as a new line does.
t.test('a job whose agent died waits for it to come back (--mp-no-fallback)', async (t) => {
  const dir = t.testdir({
    Makefile: 'out:\n\t@echo run >> runs; sleep 1; echo built > $@\n',
  });
  const report = join(dir, 'report.json');
  const first = await spawnLocalAgent({ slots: 1, env: cleanEnv() });
  const build = runMpmake(
    [
      `--mp-hosts=127.0.0.1:${first.port}/1`,
      `--mp-report=${report}`,
      '--mp-no-fallback',
      '--mp-heartbeat-timeout=1000',
    ],
    { cwd: dir, env: cleanEnv() },
  );
  // The job runs on the agent: it dies with it (no word to the client).
  for (let i = 0; i < 200 && !existsSync(join(dir, 'runs')); i++) await sleep(50);
  await first.stop('SIGKILL');
  await sleep(1500);
  const again = await spawnLocalAgent({
    slots: 1,
    listen: `127.0.0.1:${first.port}`,
    env: cleanEnv(),
  });
  t.teardown(() => again.stop());
  const r = await build;
  const err = r.stderr.toString();
  t.equal(r.code, 0, err);
  t.equal(readFileSync(join(dir, 'out'), 'utf8'), 'built\n');
  t.notMatch(err, /MPM_ERR_AGENT_LOST|no agent is reachable/);
  const rep = JSON.parse(readFileSync(report, 'utf8'));
  t.equal(rep.jobs.retried, 1, 'the job ran again, on the agent that came back');
  t.equal(rep.jobs.remote, 1);
});
