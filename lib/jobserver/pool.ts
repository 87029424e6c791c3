import { closeSync, constants, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';

/**
 * The jobserver pool mpmake owns for its make: a FIFO in mpmake's private
 * run directory, opened O_RDWR|O_NONBLOCK, whose one fd is handed to make as
 * both ends (`--jobserver-auth=FD,FD`). Node cannot create an anonymous
 * pipe, and the socketpair behind `stdio: 'pipe'` is not something make can
 * use as a jobserver. The pool holds slots-1 one-byte tokens: every make
 * holds one implicit slot.
 */
export class JobserverPool {
  readonly fd: number;
  readonly path: string;
  private tokensOut = 0;

  constructor(
    runDir: string,
    readonly slots: number,
  ) {
    this.path = join(runDir, 'jobserver');
    execFileSync('mkfifo', ['-m', '0600', this.path]);
    this.fd = openSync(this.path, constants.O_RDWR | constants.O_NONBLOCK);
    this.tokensOut = Math.max(0, slots - 1);
    if (this.tokensOut > 0) writeSync(this.fd, Buffer.alloc(this.tokensOut, '+'));
  }

  /** Tokens put into the pool at start. */
  get tokens(): number {
    return this.tokensOut;
  }

  close(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
  }
}
