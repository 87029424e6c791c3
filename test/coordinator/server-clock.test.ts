// Start check against the file server's clock (issue 11): the mtime the
// shared file system stamps on the probe file gives the server's clock as a
// range (whole seconds on sftp), and a node surely farther from it than the
// limit is left out.
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { serverSkew, skewToServer, surelyBeyond } from '../../lib/coordinator/server-clock.js';

t.test('the server clock as a range from a whole-second mtime', async (t) => {
  const file = join(t.testdir(), 'probe');
  writeFileSync(file, 'x');
  utimesSync(file, 1_700_000_000, 1_700_000_000); // server 1_700_000_000.000-.999
  const r = serverSkew(file, 1_700_000_000_200, 1_700_000_000_300)!;
  t.same(r, { lo: -300, hi: 800 }, 'anywhere from 300 ms behind to 800 ms ahead');
});

const at = (ms: number): { lo: number; hi: number } => ({ lo: ms, hi: ms });

t.test('a node is flagged only when surely past the limit', async (t) => {
  const server = { lo: -300, hi: 800 };
  t.equal(skewToServer(at(0), server, 1000), undefined, 'in step');
  t.equal(skewToServer(at(1700), server, 1000), undefined, 'maybe within the limit: not flagged');
  t.equal(skewToServer(at(1900), server, 1000), 1100, 'surely 1100 ms ahead of the server');
  t.equal(skewToServer(at(-1400), server, 1000), -1100, 'surely 1100 ms behind');
  t.equal(skewToServer(at(30_000), { lo: 0, hi: 1 }, 1000), 29_999, 'a precise server clock');
});

// Found by the twelve-users benchmark at load ~25: a loopback agent (the
// same clock) left out as 'its clock differs from ours by 1152 ms' because
// its pong came back late and the midpoint of ping and pong was taken as
// the moment it read its clock.
t.test('a slow pong widens the range and leaves no node out by itself', async (t) => {
  // Ping at 0, pong at 2304 ms, the agent's clock read (in step) at 100 ms:
  // node minus ours lies in [100 - 2304, 100 - 0].
  const slow = { lo: 100 - 2304, hi: 100 };
  t.equal(surelyBeyond(slow, 1000), undefined, 'in step, answered late: kept');
  t.equal(skewToServer(slow, { lo: -300, hi: 800 }, 1000), undefined, 'nor against the server');
  t.equal(surelyBeyond({ lo: 2300, hi: 2350 }, 1000), 2300, 'surely 2300 ms ahead: left out');
  t.equal(surelyBeyond({ lo: -1800, hi: -1500 }, 1000), -1500, 'surely 1500 ms behind');
});
