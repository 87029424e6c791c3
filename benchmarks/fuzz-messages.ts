/**
 * The structure-aware fuzzer over the decoded message space, at volume
 * (test/helpers/message-fuzz.ts): messages of both directions built from
 * the wire schemas, mutated (wrong types, uncallable toString/valueOf,
 * prototype keys, extension types, unsafe numbers, deep nesting, sizes),
 * encoded, and run through the real frame decoder and both validators in
 * this process. Target: 1,000,000 cases, 0 crashes (an exception out of a
 * validator would be a peer's crash), memory bounded (RSS sampled).
 * The agent over real sockets, with the same mutations among its case
 * kinds, is benchmarks/fuzz-agent.ts.
 *
 *   node dist/benchmarks/fuzz-messages.js [--cases 1000000] [--seed 1]
 */
import { makeRng } from '../test/helpers/agent-fuzz.js';
import { fuzzDecoded } from '../test/helpers/message-fuzz.js';
import { isMain, machine, markdownTable, numberOptions, writeResults } from './common.js';

const BATCH = 10_000;

export async function runFuzzMessages(cases: number, seed: number): Promise<unknown> {
  const rng = makeRng(seed);
  const started = Date.now();
  let peakRss = process.memoryUsage.rss();
  const total = { cases: 0, undecodable: 0, accepted: 0, rejected: 0, crashes: 0 };
  const examples: string[] = [];
  for (let done = 0; done < cases; done += BATCH) {
    const r = fuzzDecoded(rng, Math.min(BATCH, cases - done));
    total.cases += r.cases;
    total.undecodable += r.undecodable;
    total.accepted += r.accepted;
    total.rejected += r.rejected;
    total.crashes += r.crashes;
    if (examples.length < 20) examples.push(...r.examples.slice(0, 20 - examples.length));
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    if ((done / BATCH) % 10 === 0) {
      process.stderr.write(`fuzz-messages: ${done + BATCH} cases, ${total.crashes} crashes\n`);
    }
  }
  const seconds = (Date.now() - started) / 1000;
  const result = {
    seed,
    machine: machine(),
    seconds,
    casesPerSecond: Math.round(total.cases / seconds),
    ...total,
    peakRssMiB: Math.round(peakRss / 2 ** 20),
    examples,
    target: { cases: 1_000_000, crashes: 0 },
    met: total.cases >= 1_000_000 && total.crashes === 0,
  };
  const markdown =
    '# fuzz-messages: the decoded message space, both directions\n\n' +
    markdownTable(
      [
        'cases',
        'seconds',
        'cases/s',
        'crashes',
        'undecodable',
        'rejected',
        'accepted',
        'peak RSS MiB',
        'target met',
      ],
      [
        [
          result.cases,
          seconds.toFixed(0),
          result.casesPerSecond,
          result.crashes,
          result.undecodable,
          result.rejected,
          result.accepted,
          result.peakRssMiB,
          result.met ? 'yes' : 'no',
        ],
      ],
    ) +
    '\nEach decodable frame is checked by both validators (so rejected + accepted ' +
    'is about twice the decodable cases). Target: ≥ 1,000,000 cases, 0 crashes.\n';
  const files = await writeResults('fuzz-messages', result, markdown);
  process.stdout.write(`\n${markdown}\nwrote ${files.join(', ')}\n`);
  return result;
}

if (isMain(import.meta.url)) {
  try {
    const o = numberOptions(process.argv.slice(2), ['cases', 'seed']);
    const r = (await runFuzzMessages(o['cases'] ?? 1_000_000, o['seed'] ?? 1)) as {
      crashes: number;
    };
    if (r.crashes > 0) process.exitCode = 1;
  } catch (err) {
    process.stderr.write(`fuzz-messages: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
