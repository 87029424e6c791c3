/**
 * Regression (issue 15, twelve users in MUNGE mode): under load welcomes
 * carried an EMPTY MUNGE credential ("malformed welcome: /munge … length
 * ≥ 1"). Many encodes and decodes at once against one munged: each is a
 * real credential that decodes to its own payload, or a MungeError, never
 * an empty string.
 */
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
