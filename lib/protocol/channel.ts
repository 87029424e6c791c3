import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { HandlerError, ProtocolError } from '../errors.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameDecoder } from './frame-codec.js';

export interface ChannelEvents<In> {
  message: [In];
  /** A frame or message was invalid; the channel is destroyed right after. */
  'protocol-error': [Error];
  drain: [];
  close: [Error | undefined];
}

export interface ChannelOptions<In> {
  /** Validates a decoded value; a string return names what was wrong. */
  check: (value: unknown) => In | string;
  maxFrameBytes?: number;
}

/**
 * A framed, typed, bidirectional message channel over one socket. Incoming
 * frames are decoded and validated; an invalid one closes the channel (the
 * peer is broken or hostile, and nothing after it can be trusted).
 * `send` returns false when the socket's buffer is full; wait for 'drain'.
 *
 * No exception escapes a socket event: whatever the validator or a
 * listener throws fails this channel alone ('protocol-error' with
 * MPM_ERR_INTERNAL, then 'close'), so one peer can never end the process.
 */
export class Channel<In, Out> extends EventEmitter<ChannelEvents<In>> {
  private readonly decoder: FrameDecoder;
  private closed = false;

  constructor(
    readonly socket: Socket,
    private readonly options: ChannelOptions<In>,
  ) {
    super();
    this.decoder = new FrameDecoder(options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.guard('data', () => this.onData(chunk)));
    socket.on('drain', () => this.guard('drain', () => this.emit('drain')));
    socket.on('end', () => {
      let err: Error | undefined;
      try {
        this.decoder.end();
      } catch (e) {
        err = e as Error;
      }
      this.finish(err);
    });
    socket.on('error', (err) => this.finish(err));
    socket.on('close', () => this.finish(undefined));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Changes the frame limit for the frames that follow (e.g. once the peer is trusted). */
  setMaxFrameBytes(maxFrameBytes: number): void {
    this.decoder.maxFrameBytes = maxFrameBytes;
  }

  send(message: Out): boolean {
    if (this.closed) return false;
    return this.socket.write(encodeFrame(message));
  }

  /** Sends what is queued, then closes. */
  close(): void {
    if (this.closed) return;
    this.socket.end();
  }

  /** Closes at once, dropping anything unsent. */
  destroy(err?: Error): void {
    this.socket.destroy();
    this.finish(err);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let values: unknown[];
    try {
      values = this.decoder.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    for (const value of values) {
      if (this.closed) return;
      let checked: In | string;
      try {
        checked = this.options.check(value);
      } catch (err) {
        checked = `invalid message (${(err as Error).name})`;
      }
      if (typeof checked === 'string') {
        this.fail(new ProtocolError(checked));
        return;
      }
      try {
        this.emit('message', checked);
      } catch (err) {
        const type = String((checked as { type?: unknown }).type);
        this.fail(handlerError(`handling a '${type}' message`, err));
        return;
      }
    }
  }

  /** Runs a socket event's work; an exception fails this channel only. */
  private guard(what: string, work: () => void): void {
    try {
      work();
    } catch (err) {
      this.fail(handlerError(`on '${what}'`, err));
    }
  }

  private fail(err: Error): void {
    if (this.closed) return;
    try {
      this.emit('protocol-error', err);
    } catch {
      // A listener's failure must not stop the channel from closing.
    }
    this.destroy(err);
  }

  private finish(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.emit('close', err);
    } catch {
      // Nothing more can be done for this connection; the process goes on.
    }
  }
}

function handlerError(where: string, err: unknown): HandlerError {
  const text = err instanceof Error ? err.message : typeof err;
  return new HandlerError(`internal error ${where}: ${text} [MPM_ERR_INTERNAL]`, { cause: err });
}
