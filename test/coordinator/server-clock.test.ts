// Start check against the file server's clock (issue 11): the mtime the
// shared file system stamps on the probe file gives the server's clock as a
// range (whole seconds on sftp), and a node surely farther from it than the
// limit is left out.
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { serverSkew, skewToServer } from '../../lib/coordinator/server-clock.js';

t.test('the server clock as a range from a whole-second mtime', async (t) => {
  const file = join(t.testdir(), 'probe');
  writeFileSync(file, 'x');
  utimesSync(file, 1_700_000_000, 1_700_000_000); // server 1_700_000_000.000-.999
  const r = serverSkew(file, 1_700_000_000_200, 1_700_000_000_300)!;
  t.same(r, { lo: -300, hi: 800 }, 'anywhere from 300 ms behind to 800 ms ahead');
});

t.test('a node is flagged only when surely past the limit', async (t) => {
  const server = { lo: -300, hi: 800 };
  t.equal(skewToServer(0, server, 1000), undefined, 'in step');
  t.equal(skewToServer(1700, server, 1000), undefined, 'maybe within the limit: not flagged');
  t.equal(skewToServer(1900, server, 1000), 1100, 'surely 1100 ms ahead of the server');
  t.equal(skewToServer(-1400, server, 1000), -1100, 'surely 1100 ms behind');
  t.equal(skewToServer(30_000, { lo: 0, hi: 1 }, 1000), 29_999, 'a precise server clock');
});
