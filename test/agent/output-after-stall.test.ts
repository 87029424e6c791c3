/**
 * Regression (fuzz test "the good client never failed", 2 of 5 runs under
 * load): a fast job's output was lost when the agent stalled right after
 * the job's exit. The exit armed the EXIT_IDLE_MS timer (for background
 * children that hold a pipe); a stall longer than that (load ~20 on two
 * cores, or a long turn of the event loop under fuzzing) made the timer
 * due before the next poll of the pipe, so the job ended, status 0, with
 * its output still unread in the pipe: `echo good-7` came back empty.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { EXIT_IDLE_MS, type JobOutcome } from '../../lib/agent/job-process.js';
import { PipedJobProcess } from '../../lib/agent/piped-job-process.js';

/** A job whose stdout is a real FIFO, told of its exit by the test. */
class FifoJob extends PipedJobProcess {
  constructor(fifo: string) {
    super();
    const fd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    this.watch(1, new Socket({ fd, readable: true, writable: false }));
  }

  get pid(): number | undefined {
    return undefined;
  }

  kill(): void {}

  exit(outcome: JobOutcome): void {
    this.exited(outcome);
  }
}

/** Busy: nothing else of this process runs meanwhile, as when the machine does not schedule it. */
function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // stalled
  }
}

t.test(
  'output waiting in the pipe survives a stall past EXIT_IDLE_MS after the exit',
  async (t) => {
    const fifo = join(t.testdir(), 'out');
    execFileSync('mkfifo', [fifo]);
    const job = new FifoJob(fifo);
    let out = '';
    job.on('data', (_stream, bytes) => (out += bytes.toString()));
    const finished = new Promise<JobOutcome>((resolve) => job.once('finish', resolve));
    // The job wrote its line and exited; a background child still holds the
    // pipe open (so no EOF comes), as the idle timer exists for.
    const writer = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    t.teardown(() => closeSync(writer));
    writeSync(writer, 'good-7\n');
    job.exit({ code: 0, signal: null });
    stall(EXIT_IDLE_MS + 300);
    t.same(await finished, { code: 0, signal: null }, 'it ends (the pipe is given up on)');
    t.equal(out, 'good-7\n', 'with the output that was waiting in the pipe');
  },
);
