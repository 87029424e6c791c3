/**
 * Regression (issue 15, twelve users in MUNGE mode): under load welcomes
 * carried an EMPTY MUNGE credential ("malformed welcome: /munge … length
 * ≥ 1"). Many encodes and decodes at once against one munged: each is a
 * real credential that decodes to its own payload, or a MungeError, never
 * an empty string.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import t from 'tap';
import { mungeDecode, mungeEncode, MungeError } from '../../lib/protocol/munge.js';
import { mungeSkip, startMunged } from '../helpers/munge.js';

const skip = mungeSkip();
const N = 24;

t.test('MUNGE: concurrent encodes are never empty and each decodes', { skip }, async (t) => {
  const munged = await startMunged(t);
  const payloads = Array.from({ length: N }, (_, i) => Buffer.from(`payload ${i}`));
  const creds = await Promise.all(payloads.map((p) => mungeEncode(p, munged.socket)));
  for (const c of creds) t.match(c, /^MUNGE:[A-Za-z0-9+/=]+:$/, 'a whole credential');
  t.equal(new Set(creds).size, N, 'each its own');
  const decoded = await Promise.all(creds.map((c) => mungeDecode(c, munged.socket)));
  t.same(
    decoded.map((d) => d.payload.toString()),
    payloads.map((p) => p.toString()),
    'each decodes to its own payload',
  );
});

t.test(
  'MUNGE: no munged is an error naming the socket, not an empty credential',
  { skip },
  async (t) => {
    const socket = join(tmpdir(), `mpm-no-munged-${process.pid}.socket`);
    const err = await mungeEncode(Buffer.from('x'), socket).then(
      (c) => c,
      (e: unknown) => e,
    );
    t.type(err, MungeError);
    t.match((err as MungeError).message, socket);
    t.equal((err as MungeError).local, true);
  },
);

t.test(
  "MUNGE over munged's socket: the munge programs decode ours, and we decode theirs",
  { skip },
  async (t) => {
    const munged = await startMunged(t);
    const ours = await mungeEncode(Buffer.from('made over the socket'), munged.socket);
    const shown = execFileSync('unmunge', ['-S', munged.socket, '-k', 'STATUS,UID'], {
      input: ours,
    }).toString();
    t.match(shown, /STATUS:\s+Success \(0\)/, 'unmunge takes our credential');
    t.match(shown, new RegExp(`UID:\\s+\\S+ \\(${process.getuid!()}\\)`), 'for our uid');
    t.match(shown, /made over the socket/, 'with our payload');
    const theirs = execFileSync('munge', ['-S', munged.socket], { input: 'made by munge' });
    const decoded = await mungeDecode(theirs.toString().trim(), munged.socket);
    t.equal(decoded.uid, process.getuid!(), "munge's credential decodes here, its uid");
    t.equal(decoded.payload.toString(), 'made by munge', 'and its payload');
    const again = await mungeDecode(theirs.toString().trim(), munged.socket).catch(
      (e: unknown) => e,
    );
    t.match(again, { local: false, message: /replayed/ }, 'a second decode is a replay');
  },
);
