/**
 * F8 (audit 2026-12): a job with more than 2^20 argv entries held a slot
 * forever (the spawner dropped the frame without an answer), and queued
 * jobs had no byte budget (20 queued 15 MiB jobs took an agent to 436 MB).
 * Now argv is held to what exec takes, the spawner answers every frame,
 * and waiting jobs have a byte budget per client and in all; each refusal
 * is an `error` message with code MPM_ERR_JOB_REFUSED and the job's id.
 */
import t from 'tap';
import { MAX_ARGV_BYTES, MAX_ARGV_ENTRIES } from '../../lib/agent/job-check.js';
import { QueueBudget } from '../../lib/agent/queue-budget.js';
import { SpawnClient } from '../../lib/agent/spawn-client.js';
import { SpawnedJobProcess } from '../../lib/agent/spawned-job-process.js';
import type { JobOutcome } from '../../lib/agent/job-process.js';
import type { ErrorMessage, StatusMessage } from '../../lib/protocol/messages.js';
import { startAgent, TestClient } from '../agent/client.js';

const MiB = 1024 * 1024;
const refusal = (client: TestClient, id: number): Promise<ErrorMessage> =>
  client.waitFor<ErrorMessage>((m) => m.type === 'error' && m.id === id, `refusal of job ${id}`);

t.test('argvleak: a job with 1,100,001 argv entries is refused; the slot stays free', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const bad = await TestClient.ready(t, agent.port);
  const many = bad.submit({ argv: ['/bin/true', ...Array<string>(1_100_000).fill('')] });
  t.match(await refusal(bad, many), {
    code: 'MPM_ERR_JOB_REFUSED',
    refusal: 'invalid-job',
    message: `argv has 1100001 entries, over the limit of ${MAX_ARGV_ENTRIES}`,
  });
  const huge = bad.submit({ argv: ['/bin/true', 'x'.repeat(MAX_ARGV_BYTES)] });
  t.match(await refusal(bad, huge), { message: /^argv is \d+ bytes, over the limit of 2097152$/ });
  bad.socket.destroy();

  const next = await TestClient.ready(t, agent.port);
  t.equal((await next.run('echo hello')).stdout.toString(), 'hello\n', 'a new client runs');
  next.send({ type: 'status-request', id: 9 });
  const status = await next.waitFor<StatusMessage>((m) => m.type === 'status');
  t.same(status.jobs, [], 'nothing runs or waits on the node');
});

t.test('the spawner answers a frame over its argv count instead of dropping it', async (t) => {
  const spawner = SpawnClient.start();
  if (!spawner) {
    t.comment('build/mpmake-spawnd is not built: nothing to check');
    return;
  }
  t.teardown(() => spawner.close());
  const job = new SpawnedJobProcess(spawner, {
    argv: ['/bin/true', ...Array<string>(1 << 20).fill('')],
    env: {},
    cwd: '/tmp',
    umask: 0o022,
    mergeOutput: false,
  });
  const err: Buffer[] = [];
  job.on('data', (_s, b) => err.push(b));
  const outcome = await new Promise<JobOutcome>((resolve) => job.once('finish', resolve));
  t.match(outcome, { code: 127 });
  t.match(Buffer.concat(err).toString(), /cannot start job: errno 7\b/, 'E2BIG');
});

t.test('queuemem: waiting jobs have a byte budget per client and in all', async (t) => {
  const agent = await startAgent(t, {
    slots: 1,
    extraArgs: ['--max-queued-bytes-per-client', '4M', '--max-queued-bytes', '6M'],
  });
  const a = await TestClient.ready(t, agent.port);
  const b = await TestClient.ready(t, agent.port);
  a.submit({ argv: ['/bin/sleep', '30'] });
  await a.waitFor((m) => m.type === 'load' && m.running === 1, 'the slot taken');
  // 1 MiB in 16 arguments (one argument may not pass 128 KiB at exec).
  const mib = Array<string>(16).fill('x'.repeat(64 * 1024));
  const big = (c: TestClient): number => c.submit({ argv: ['/bin/true', ...mib] });
  const queued = (c: TestClient, id: number): Promise<unknown> =>
    c.waitFor((m) => m.type === 'queued' && m.id === id, `job ${id} queued`);

  for (let i = 0; i < 3; i++) await queued(a, big(a));
  t.match(await refusal(a, big(a)), {
    code: 'MPM_ERR_JOB_REFUSED',
    refusal: 'byte-budget',
    message:
      /^queued jobs of this client would hold \d+ bytes, over the limit of 4194304 \(--max-queued-bytes-per-client\)$/,
  });
  for (let i = 0; i < 2; i++) await queued(b, big(b));
  t.match(await refusal(b, big(b)), {
    refusal: 'byte-budget',
    message:
      /^queued jobs of all clients would hold \d+ bytes, over the limit of 6291456 \(--max-queued-bytes\)$/,
  });

  // A withdrawn job frees its bytes; a client that leaves frees all of its own.
  const firstOfB = b.messages.find((m) => m.type === 'queued')!;
  b.send({ type: 'withdraw', id: (firstOfB as { id: number }).id });
  await b.waitFor((m) => m.type === 'withdrawn');
  await queued(b, big(b));
  a.socket.destroy();
  await a.closed;
  // The slot is free now: B's jobs run, and two more are admitted.
  const more = [big(b), big(b)];
  for (const id of more) t.match((await b.result(id)).exit, { code: 0 }, `job ${id} ran`);
  t.equal(
    (await b.run('echo still-served', { cwd: '/' })).stdout.toString(),
    'still-served\n',
    'queued jobs run once the slot frees',
  );
});

t.test('QueueBudget: reserve, refuse, release once', async (t) => {
  const budget = new QueueBudget(10, 15);
  const [a, b] = [{}, {}];
  const r1 = budget.reserve(a, 8);
  t.type(r1, 'object');
  t.match(budget.reserve(a, 3), /this client would hold 11 bytes, over the limit of 10/);
  const r2 = budget.reserve(b, 7);
  t.match(budget.reserve(b, 1), /all clients would hold 16 bytes, over the limit of 15/);
  if (typeof r1 === 'string' || typeof r2 === 'string') throw new Error('unexpected refusal');
  r1.release();
  r1.release();
  t.equal(budget.usedBytes, 7, 'a second release changes nothing');
  t.type(budget.reserve(a, 8), 'object', 'what was released can be reserved again');
});

t.test('budget options: bad values are usage errors naming the option', async (t) => {
  const { resolveAgentOptions } = await import('../../lib/agent/agent-options.js');
  const ok = await resolveAgentOptions({ maxQueuedBytesPerClient: '64M', maxQueuedBytes: 1000 });
  t.match(ok, { maxQueuedBytesPerClient: 64 * MiB, maxQueuedBytes: 1000 });
  const dflt = await resolveAgentOptions({});
  t.match(dflt, { maxQueuedBytesPerClient: 32 * MiB, maxQueuedBytes: 128 * MiB });
  await t.rejects(resolveAgentOptions({ maxQueuedBytes: 'lots' }), {
    code: 'MPM_ERR_USAGE',
    message:
      /--max-queued-bytes must be a positive number of bytes \(e\.g\. 67108864 or 64M\), got "lots"/,
  });
});
