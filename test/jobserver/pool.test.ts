import t from 'tap';
import { readSync, writeSync } from 'node:fs';
import { JobserverPool } from '../../lib/jobserver/pool.js';
import { findParentPool } from '../../lib/jobserver/parent-pool.js';

const takeOne = (fd: number): boolean => {
  try {
    return readSync(fd, Buffer.alloc(1), 0, 1, null) === 1;
  } catch {
    return false;
  }
};

t.test('a pool of N slots holds N-1 tokens and counts them back', async (t) => {
  const pool = new JobserverPool(t.testdir(), 4);
  t.teardown(() => pool.close());
  t.equal(pool.count(), 3);
  t.equal(pool.slots, 4);
  t.ok(takeOne(pool.fd), 'a client takes a token');
  t.equal(pool.count(), 2);
  t.same(pool.drain(), { found: 2, expected: 3 }, 'one token is still out');
});

t.test('growing writes tokens; shrinking takes them back as they return', async (t) => {
  const pool = new JobserverPool(t.testdir(), 2);
  t.teardown(() => pool.close());
  pool.resize(5);
  t.equal(pool.count(), 4);
  t.ok(takeOne(pool.fd) && takeOne(pool.fd) && takeOne(pool.fd), 'clients hold 3 tokens');
  pool.resize(2); // wants 1 token: 3 owed, 1 in the pool now
  t.equal(pool.slots, 2);
  t.equal(pool.count(), 0, 'the free token was taken back at once');
  writeSync(pool.fd, Buffer.from('++')); // two clients return theirs
  pool.absorb();
  t.equal(pool.count(), 0, 'returned tokens pay the debt');
  writeSync(pool.fd, Buffer.from('+'));
  pool.absorb();
  t.equal(pool.count(), 1, 'the last token stays: the pool stands for 2 slots');
  t.same(pool.drain(), { found: 1, expected: 1 });
});

t.test('growing while in debt cancels debt first', async (t) => {
  const pool = new JobserverPool(t.testdir(), 3);
  t.teardown(() => pool.close());
  t.ok(takeOne(pool.fd) && takeOne(pool.fd));
  pool.resize(1); // owes 2, both out
  pool.resize(3); // wants them again: no new tokens written
  t.equal(pool.count(), 0);
  t.equal(pool.stats.added, 2, 'only the first two tokens were ever written');
  writeSync(pool.fd, Buffer.from('++'));
  t.same(pool.drain(), { found: 2, expected: 2 });
});

t.test('refill replaces tokens lost with a dead client', async (t) => {
  const pool = new JobserverPool(t.testdir(), 3);
  t.teardown(() => pool.close());
  t.ok(takeOne(pool.fd));
  pool.refill(1);
  t.equal(pool.count(), 2);
  t.equal(pool.stats.refilled, 1);
});

t.test('parent pools are found in MAKEFLAGS, or explained', async (t) => {
  t.same(findParentPool(undefined), { found: false });
  t.match(findParentPool('-2,-2'), {
    found: true,
    pool: undefined,
    why: /did not pass its jobserver/,
  });
  t.match(findParentPool('97,98'), {
    found: true,
    pool: undefined,
    why: /not open here/,
  });
  t.match(findParentPool('fifo:/nonexistent/x'), {
    found: true,
    pool: undefined,
    why: /cannot open/,
  });
  const pool = new JobserverPool(t.testdir(), 2);
  t.teardown(() => pool.close());
  const viaFifo = findParentPool(`fifo:${pool.path}`);
  t.match(viaFifo, { found: true, pool: { kind: 'fifo', path: pool.path } }, 'the last word wins');
  const viaFds = findParentPool(`${pool.fd},${pool.fd}`);
  t.match(viaFds, { found: true, pool: { kind: 'pipe', readFd: pool.fd, writeFd: pool.fd } });
});
