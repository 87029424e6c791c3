/**
 * Regression (issue 15, the "empty credential"): twelve users at load 22
 * got welcomes whose MUNGE credential was empty. The agent ran `munge`
 * under child_process.execFile's timeout, which drops the program's output
 * pipes before it kills it: when the agent's event loop was late (starved,
 * it runs due timers before it reads its pipes) and munge had already
 * finished, the kill found nothing to kill and execFile said "success",
 * with no output. Here the event loop is held until the program has
 * finished and its time limit is long past, as a starved agent's was.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { runBounded } from '../../lib/agent/bounded-exec.js';

/** Our children that have exited and are not yet reaped (zombies). */
function finishedChildren(): number[] {
  const children = readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8')
    .trim()
    .split(' ')
    .filter((p) => p !== '');
  return children.map(Number).filter((pid) => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
    } catch {
      return false;
    }
  });
}

/** Holds the event loop (synchronously) until a child of ours has exited; false after 60 s. */
function holdUntilAChildFinished(): boolean {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) if (finishedChildren().length > 0) return true;
  return false;
}

t.test(
  'empty credential: a program that finished while our event loop was late keeps its output',
  async (t) => {
    const run = runBounded('/bin/echo', ['MUNGE:credential:'], { timeoutMs: 1 });
    t.ok(holdUntilAChildFinished(), 'the program finished while the event loop was held');
    const r = await run;
    t.equal(r.code, 0, 'it exited 0');
    t.equal(r.stdout.toString(), 'MUNGE:credential:\n', 'and all its output came through');
    t.equal(r.killed, undefined, 'it was not counted as killed');
  },
);

t.test('a program past its time limit is killed, and says so', async (t) => {
  const r = await runBounded('/bin/sleep', ['30'], { timeoutMs: 50 });
  t.equal(r.signal, 'SIGKILL');
  t.equal(r.code, null);
  t.equal(r.killed, 'time');
});

t.test('a program that cannot start is a rejection', async (t) => {
  await t.rejects(runBounded('/nonexistent/mpm-program', [], { timeoutMs: 1000 }), {
    code: 'ENOENT',
  });
});
