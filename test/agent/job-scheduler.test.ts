import t from 'tap';
import { JobScheduler } from '../../lib/agent/job-scheduler.js';

function harness(slots: number): {
  s: JobScheduler<string>;
  started: string[];
  changes: () => number;
} {
  const started: string[] = [];
  let changes = 0;
  const s = new JobScheduler<string>(
    slots,
    (j) => started.push(j),
    () => changes++,
  );
  return { s, started, changes: () => changes };
}

t.test('runs up to slots, queues the rest, never refuses', async (t) => {
  const { s, started } = harness(2);
  const a = {};
  for (const j of ['a1', 'a2', 'a3', 'a4']) s.submit(a, j);
  t.same(started, ['a1', 'a2']);
  t.equal(s.runningCount, 2);
  t.equal(s.queuedCount, 2);
  t.equal(s.queuedFor(a), 2);
  s.release('a1');
  t.same(started, ['a1', 'a2', 'a3']);
  s.release('nope');
  t.equal(s.runningCount, 2, 'releasing an unknown job changes nothing');
});

t.test('round-robin across clients, FIFO within each', async (t) => {
  const { s, started } = harness(1);
  const a = {};
  const b = {};
  const c = {};
  for (let i = 1; i <= 6; i++) s.submit(a, `a${i}`);
  s.submit(b, 'b1');
  s.submit(b, 'b2');
  s.submit(c, 'c1');
  while (s.runningCount > 0) s.release(started[started.length - 1]!);
  // a had the slot: b and c have had nothing yet, so they go first.
  t.same(started, ['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4', 'a5', 'a6']);
});

t.test('a release from inside start is fine', async (t) => {
  const started: string[] = [];
  const s: JobScheduler<string> = new JobScheduler<string>(1, (j) => {
    started.push(j);
    if (j.startsWith('fail')) s.release(j);
  });
  const a = {};
  s.submit(a, 'fail1');
  t.same(started, ['fail1']);
  s.submit(a, 'ok');
  s.submit(a, 'fail2');
  t.same(started, ['fail1', 'ok']);
  s.release('ok');
  t.same(started, ['fail1', 'ok', 'fail2']);
  t.equal(s.runningCount, 0);
});

t.test('removeQueued and dropClient', async (t) => {
  const { s, started, changes } = harness(1);
  const a = {};
  const b = {};
  s.submit(a, 'a1');
  s.submit(a, 'a2');
  s.submit(b, 'b1');
  s.submit(b, 'b2');
  const before = changes();
  t.ok(s.removeQueued(b, 'b1'));
  t.notOk(s.removeQueued(b, 'b1'));
  t.notOk(s.removeQueued(a, 'a1'), 'a running job is not queued');
  t.ok(changes() > before);
  t.same(s.dropClient(a), ['a2']);
  t.same(s.dropClient(a), []);
  t.equal(s.queuedCount, 1);
  s.release('a1');
  t.same(started, ['a1', 'b2']);
  t.throws(() => new JobScheduler(0, () => {}));
});

t.test('fair per user: two builds of one user share one turn', async (t) => {
  const { s, started } = harness(1);
  const alice1 = {};
  const alice2 = {};
  const bob = {};
  s.submit(alice1, 'x0', 'alice'); // takes the slot
  for (let i = 1; i <= 3; i++) s.submit(alice1, `a${i}`, 'alice');
  for (let i = 1; i <= 3; i++) s.submit(alice2, `A${i}`, 'alice');
  for (let i = 1; i <= 4; i++) s.submit(bob, `b${i}`, 'bob');
  while (s.runningCount > 0) s.release(started[started.length - 1]!);
  // Users alternate; alice's turns alternate between her two builds. bob
  // goes first: alice has had the slot (x0), bob nothing yet.
  t.same(started, ['x0', 'b1', 'a1', 'b2', 'A1', 'b3', 'a2', 'b4', 'A2', 'a3', 'A3']);
  const bobJobs = started.slice(1, 9).filter((j) => j.startsWith('b')).length;
  t.equal(bobJobs, 4, 'bob got every other slot while both waited');
  s.dropClient(alice1);
  s.dropClient(alice2);
  s.dropClient(bob);
  s.submit(bob, 'b5', 'bob');
  t.equal(started[started.length - 1], 'b5', 'dropped users leave no trace');
});

// Issue 15: twelve users' builds at once on one agent. While every user has
// jobs waiting, each gets the same number of starts (within one), however
// uneven their builds (how many jobs, how long each runs, how many at once).
t.test('twelve users, uneven builds: equal starts while all twelve wait', async (t) => {
  interface Job {
    user: number;
    runs: number;
  }
  const users = 12;
  const slots = 4;
  const running: { job: Job; endsAt: number }[] = [];
  let now = 0;
  const s = new JobScheduler<Job>(slots, (job) => running.push({ job, endsAt: now + job.runs }));
  const total = new Array<number>(users).fill(0);
  // Starts counted once every user has had one: user 0 took all four free
  // slots before the others came, and they catch up on that first.
  const starts = new Array<number>(users).fill(0);
  const waiting = new Array<number>(users).fill(0);
  // User u: 20 + 3u jobs of 1 + u % 4 time units, one build (user 0..5) or two (6..11).
  const clients = Array.from({ length: users }, (_, u) => (u < 6 ? [{}] : [{}, {}]));
  for (let u = 0; u < users; u++) {
    for (let k = 0; k < 20 + 3 * u; k++) {
      waiting[u]!++;
      s.submit(clients[u]![k % clients[u]!.length]!, { user: u, runs: 1 + (u % 4) }, `user${u}`);
    }
  }
  for (const r of running) {
    total[r.job.user]!++;
    waiting[r.job.user]!--;
  }
  let worst = 0;
  while (running.length > 0) {
    running.sort((a, b) => a.endsAt - b.endsAt);
    const done = running.shift()!;
    now = done.endsAt;
    const before = running.length;
    s.release(done.job);
    const counting = total.every((n) => n > 0);
    for (const { job } of running.slice(before)) {
      total[job.user]!++;
      if (counting) starts[job.user]!++;
      waiting[job.user]!--;
    }
    if (waiting.every((w) => w > 0))
      worst = Math.max(worst, Math.max(...starts) - Math.min(...starts));
  }
  t.same(
    total,
    total.map((_, u) => 20 + 3 * u),
    'every job ran once',
  );
  t.ok(worst <= 1, `while all twelve waited, starts per user differed by ${worst} at most`);
});

t.test('issue-15: each user sees its own running and waiting jobs and the others', async (t) => {
  const { s, started } = harness(2);
  const [a, a2, b, c] = [{}, {}, {}, {}];
  for (const j of ['a1', 'a2', 'a3']) s.submit(a, j, 'ann');
  s.submit(a2, 'a4', 'ann');
  for (const j of ['b1', 'b2']) s.submit(b, j, 'bob');
  s.submit(c, 'c1', 'cy');
  // a1 and a2 run; ann waits with a3 and a4 (two builds), bob with two, cy one.
  t.same(s.fairShare('ann'), { mineRunning: 2, mineQueued: 2, others: [2, 1] });
  t.same(s.fairShare('bob'), { mineRunning: 0, mineQueued: 2, others: [2, 1] });
  t.same(s.fairShare('nobody-yet'), { mineRunning: 0, mineQueued: 0, others: [2, 2, 1] });
  // ann has had both slots: the next go to bob and cy, who have had none.
  s.release('a1');
  s.release('a2');
  t.same(started.slice(2).sort(), ['b1', 'c1']);
  t.same(s.fairShare('ann'), { mineRunning: 0, mineQueued: 2, others: [1] });
  t.same(s.fairShare('bob'), { mineRunning: 1, mineQueued: 1, others: [2] });
  t.ok(s.removeQueued(b, 'b2'));
  t.same(s.fairShare('bob'), { mineRunning: 1, mineQueued: 0, others: [2] });
  s.dropClient(a2); // ann's second build goes, with a4
  t.same(s.fairShare('ann'), { mineRunning: 0, mineQueued: 1, others: [] });
  s.release('b1'); // a3
  t.same(s.fairShare('ann'), { mineRunning: 1, mineQueued: 0, others: [] });
  t.same(s.fairShare('cy'), { mineRunning: 1, mineQueued: 0, others: [] });
});

t.test(
  'issue-15: a user whose job comes just after its turn went by is not sent a round back',
  async (t) => {
    const { s, started } = harness(1);
    const [a, b, c, d] = [{}, {}, {}, {}];
    // Four users; d's build is a chain: one job at a time, the next a moment after.
    for (let i = 1; i <= 4; i++) {
      s.submit(a, `a${i}`, 'a');
      s.submit(b, `b${i}`, 'b');
      s.submit(c, `c${i}`, 'c');
    }
    s.submit(d, 'd1', 'd');
    const order = (): string => started.join(' ');
    while (!started.includes('a3')) s.release(started[started.length - 1]!);
    // d's turn came after c2, while its next step was not ready: a3 took it.
    t.equal(order(), 'a1 b1 c1 d1 a2 b2 c2 a3');
    s.submit(d, 'd2', 'd');
    s.release('a3');
    // Round-robin would go on with b3 and c3 first.
    t.equal(started[started.length - 1], 'd2', `d2 at the next free slot: ${order()}`);
    s.release('d2');
    s.submit(d, 'd3', 'd');
    while (s.runningCount > 0) s.release(started[started.length - 1]!);
    t.equal(order(), 'a1 b1 c1 d1 a2 b2 c2 a3 d2 b3 c3 d3 a4 b4 c4', 'one turn back, no more');
  },
);
