/**
 * Audit F1, fix (3): a fuzz case that sends objects where strings are
 * expected. A short bounded run of the structure-aware fuzzer over the
 * decoded message space (test/helpers/message-fuzz.ts; the 1,000,000-case
 * run is benchmarks/fuzz-messages.ts): nothing a peer can encode makes a
 * validator throw, and nothing with a non-string type is accepted.
 */
import t from 'tap';
import { makeRng } from '../helpers/agent-fuzz.js';
import { fuzzDecoded } from '../helpers/message-fuzz.js';

t.test('F1: 10,000 mutated messages through the decoder and both validators', async (t) => {
  const r = fuzzDecoded(makeRng(12), 10_000);
  t.equal(r.crashes, 0, `no validator threw: ${r.examples.join('; ')}`);
  t.ok(r.rejected > 1000, `most mutations are refused (${r.rejected})`);
  t.ok(r.accepted > 100, `unmutated messages pass (${r.accepted})`);
});
