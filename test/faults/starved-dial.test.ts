/**
 * Regression (issue 15, "no answer within 3000 ms"): twelve MUNGE users at
 * load 25-37 left agents out of their builds after the agent had answered.
 * A starved client runs its due timers before it reads its sockets, and
 * the dial's timer closed the connection with the agent's welcome already
 * waiting in the socket. Here the client's event loop is held from the
 * moment its auth is sent until the welcome is in its socket's receive
 * queue and the connect timeout is long past: the welcome must be taken.
 */
import { readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import t from 'tap';
import { localSecret } from '../../lib/agent/local-secret.js';
import { dialAgent } from '../../lib/client/agent-dial.js';
import { dialTimeoutMs, NodeChannel } from '../../lib/client/node-channel.js';
import { noSecret, startAgent } from '../agent/client.js';

const TIMEOUT_MS = 300;

/** Bytes waiting unread in the receive queue of our TCP socket on `localPort` (0 if none). */
function unread(localPort: number): number {
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || parseInt(f[1]!.split(':')[1]!, 16) !== localPort) continue;
    return parseInt(f[4]!.split(':')[1]!, 16);
  }
  return 0;
}

t.test('a welcome that came while the client was starved is taken, not timed out', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const client = { user: 'test', host: 'test', pid: process.pid, build: 'starved-dial' };
  let localPort = 0;
  let held = false;
  const outcome = await new Promise<string>((resolve) => {
    const dialed = dialAgent(
      {
        address: `127.0.0.1:${agent.port}`,
        host: '127.0.0.1',
        port: agent.port,
        slots: 1,
        local: false,
      },
      { secret: localSecret().secret, client, timeoutMs: TIMEOUT_MS },
      {
        authSent: () => {
          // Starved: nothing runs here until the welcome has come and the time is up.
          const since = Date.now();
          const deadline = since + 60_000;
          while (
            Date.now() < deadline &&
            !(unread(localPort) > 0 && Date.now() > since + 2 * TIMEOUT_MS)
          );
          held = unread(localPort) > 0;
        },
        ready: () => resolve('ready'),
        message: () => {},
        closed: (err) => resolve(`closed: ${err?.message ?? 'no reason'}`),
      },
    );
    if ('refusal' in dialed) resolve(dialed.refusal);
    else
      dialed.channel.socket.once('connect', () => (localPort = dialed.channel.socket.localPort!));
  });
  t.ok(held, "the agent's welcome was waiting unread when the client ran again");
  t.equal(outcome, 'ready', 'and the client took it');
});

t.test(
  'issue-15: an agent slower than the connect timeout joins on a later, longer dial',
  async (t) => {
    // No secret: a proof would bind the agent's own port, not the relay's.
    const agent = await startAgent(t, { slots: 1, ...noSecret() });
    // Every byte either way is held back 1 s: each handshake takes over 1 s.
    const HOLD_MS = 1000;
    const proxy = createServer((down) => {
      const up = connect(agent.port, '127.0.0.1');
      const timer = setTimeout(() => {
        down.pipe(up);
        up.pipe(down);
      }, HOLD_MS);
      const end = (): void => {
        clearTimeout(timer);
        down.destroy();
        up.destroy();
      };
      down.on('close', end).on('error', end);
      up.on('close', end).on('error', end);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    t.teardown(() => proxy.close());
    const port = (proxy.address() as AddressInfo).port;
    const node = new NodeChannel(
      { address: `127.0.0.1:${port}`, host: '127.0.0.1', port, slots: 1, local: false },
      {
        secret: undefined,
        client: { user: 'test', host: 'test', pid: process.pid, build: 'dial-backoff' },
        connectTimeoutMs: 400,
        heartbeatIntervalMs: 1000,
        heartbeatTimeoutMs: 5000,
        reconnect: true,
      },
    );
    t.teardown(() => node.close());
    const downs: string[] = [];
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not ready: ${downs.join('; ')}`)), 30_000);
      node.on('state', (state, reason) => {
        if (state === 'down') downs.push(reason ?? '');
        if (state !== 'ready') return;
        clearTimeout(timer);
        resolve();
      });
    });
    void node.start();
    await ready;
    t.match(downs[0], /400 ms/, 'the first dial had the connect timeout');
    t.match(downs[1], /800 ms/, 'the next twice that');
    t.equal(downs.length, 2, 'the third (1600 ms) got through');
    t.equal(dialTimeoutMs(400, 10), 3200, 'at most eight times the connect timeout');
  },
);
