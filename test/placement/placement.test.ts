import t from 'tap';
import {
  expectedWait,
  explain,
  pick,
  pickFirstFree,
  type NodeSnapshot,
} from '../../lib/placement/placement.js';

const node = (id: string, over: Partial<NodeSnapshot> = {}): NodeSnapshot => ({
  id,
  local: false,
  slots: 4,
  running: 0,
  queued: 0,
  inFlight: 0,
  loadavg1: 0,
  cpus: 4,
  reportAgeMs: 0,
  penalized: false,
  ...over,
});

t.test('lowest expected wait wins', async (t) => {
  t.same(pick([node('a', { running: 3 }), node('b', { running: 1 })]), { kind: 'node', id: 'b' });
  // Bigger node with the same queue waits less.
  t.same(pick([node('a', { running: 2 }), node('b', { running: 2, slots: 8 })]), {
    kind: 'node',
    id: 'b',
  });
  t.same(pick([]), { kind: 'none' });
});

t.test('our own in-flight jobs count when the report lags', async (t) => {
  t.same(pick([node('a', { inFlight: 4 }), node('b', { running: 1 })]), { kind: 'node', id: 'b' });
});

t.test(
  'issue-15: with users served round-robin, only the jobs ours would wait behind count',
  async (t) => {
    // a: a long queue, but of two users only; we have nothing there.
    const a = node('a', {
      slots: 2,
      running: 2,
      queued: 20,
      fair: { mineRunning: 0, mineQueued: 0, others: [10, 10] },
    });
    // b: a shorter queue, but six of its jobs are ours already.
    const b = node('b', {
      slots: 2,
      running: 2,
      queued: 8,
      inFlight: 7,
      fair: { mineRunning: 1, mineQueued: 6, others: [1, 1] },
    });
    t.same(pick([a, b]), { kind: 'node', id: 'a' }, 'our 7th in line at b waits longer');
    const fifo = (n: NodeSnapshot): NodeSnapshot => ({ ...n, fair: undefined });
    t.same(pick([fifo(a), fifo(b)]), { kind: 'node', id: 'b' }, 'served in order, b is shorter');
    // Jobs we sent since the report count as ours waiting.
    const lagging = node('b', { ...b, inFlight: 12 });
    t.equal(expectedWait(lagging), (2 + 11 + 1 + 1 + 1) / 2);
    t.match(explain([a]), /queue 20 \(2 ahead of ours\)/);
  },
);

t.test('load from other sources counts; stale reports do not', async (t) => {
  t.ok(expectedWait(node('a', { loadavg1: 4 })) > expectedWait(node('b')));
  t.same(pick([node('a', { loadavg1: 4 }), node('b', { running: 1 })]), { kind: 'node', id: 'b' });
  t.equal(expectedWait(node('a', { running: 4, reportAgeMs: 60_000 })), 1 / 4);
});

t.test('penalised nodes only when nothing else', async (t) => {
  t.same(pick([node('a', { penalized: true }), node('b', { running: 3 })]), {
    kind: 'node',
    id: 'b',
  });
  t.same(pick([node('a', { penalized: true })]), { kind: 'node', id: 'a' });
});

t.test('ties rotate so equal nodes share', async (t) => {
  const nodes = [node('a'), node('b'), node('c')];
  const ids = [0, 1, 2].map((r) => (pick(nodes, r) as { id: string }).id);
  t.same(new Set(ids).size, 3);
});

t.test('the client slots are a candidate', async (t) => {
  t.same(pick([node('a', { running: 4 }), node('local', { local: true, slots: 2 })]), {
    kind: 'local',
  });
});

t.test(
  'first-free (the LSF-like baseline): first node with a free slot, else refuse',
  async (t) => {
    t.same(pickFirstFree([node('a', { running: 4 }), node('b', { running: 1 }), node('c')]), {
      kind: 'node',
      id: 'b',
    });
    t.same(pickFirstFree([node('a', { running: 4 }), node('b', { inFlight: 4 })]), {
      kind: 'refuse',
    });
    t.same(pickFirstFree([]), { kind: 'none' });
  },
);

t.test('explain names every candidate with its score and facts', async (t) => {
  const line = explain([
    node('a', { running: 2, inFlight: 1, loadavg1: 2.5 }),
    node('b', { penalized: true }),
  ]);
  t.match(
    line,
    /^a 0\.88 \[run 2 queue 0 mine 1 \/ 4 slots, load 2\.5 of 4 cpus\]; b 0\.25 \[.* penalised\]$/,
  );
});
