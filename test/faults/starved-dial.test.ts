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
import t from 'tap';
import { localSecret } from '../../lib/agent/local-secret.js';
import { dialAgent } from '../../lib/client/agent-dial.js';
import { startAgent } from '../agent/client.js';

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
