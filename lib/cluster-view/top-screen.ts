/** Switch to the alternate screen buffer and hide the cursor. */
export const ENTER_SCREEN = '\x1b[?1049h\x1b[?25l';
/** Leave the alternate screen (the shell's text comes back) and show the cursor. */
export const LEAVE_SCREEN = '\x1b[?1049l\x1b[?25h';

/**
 * A full-screen terminal view: the alternate screen, no cursor, keys read
 * one by one (raw mode), frames drawn in place. `leave()` puts the terminal
 * back as it was; it also runs when the process exits with the screen still
 * up (an error elsewhere), so the user's terminal is never left raw.
 */
export class TopScreen {
  private active = false;
  private raw = false;
  private onData: ((chunk: Buffer) => void) | undefined;
  private readonly leaveOnExit = (): void => this.leave();

  constructor(
    private readonly output: NodeJS.WriteStream,
    private readonly input: NodeJS.ReadStream,
  ) {}

  /** Takes over the terminal; `onKey` gets each key typed (one character). */
  enter(onKey: (key: string) => void): void {
    if (this.active) return;
    this.active = true;
    process.once('exit', this.leaveOnExit);
    this.output.write(ENTER_SCREEN);
    if (this.input.isTTY) {
      this.input.setRawMode(true);
      this.raw = true;
    }
    this.onData = (chunk: Buffer) => {
      for (const key of chunk.toString('latin1')) onKey(key);
    };
    this.input.on('data', this.onData);
    this.input.on('error', () => {});
    this.input.resume();
  }

  /** Draws a frame over the last one: every line cleared to its end, and below the last. */
  draw(lines: readonly string[]): void {
    if (!this.active) return;
    this.output.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\r\n')}\x1b[J`);
  }

  /** Restores the terminal: raw mode off, main screen back, cursor shown. */
  leave(): void {
    if (!this.active) return;
    this.active = false;
    process.off('exit', this.leaveOnExit);
    if (this.onData) this.input.off('data', this.onData);
    this.input.pause();
    if (this.raw) {
      try {
        this.input.setRawMode(false);
      } catch {
        // the terminal is gone
      }
      this.raw = false;
    }
    this.output.write(LEAVE_SCREEN);
  }
}
