/**
 * F5 (audit 2026-12): 32 silent sockets from one address locked every
 * client of that address out (the 33rd connection was refused), and there
 * was no global bound: 1,500 stalled sockets over 47 addresses took an
 * agent from 60 to 165 MB and toward fd exhaustion. Now a newcomer always
 * gets in, pushing out the oldest unauthenticated connection of its source
 * (or, over the global `--max-unauthenticated`, of the source holding the
 * most); authenticated clients are never touched.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { PendingConnections, sourceOf } from '../../lib/agent/pending-connections.js';
import { startAgent, TestClient } from '../agent/client.js';
import { agentLog, waitUntil } from '../helpers/security.js';

/** Sockets the agent process holds open. */
const socketsOf = (pid: number): number =>
  readdirSync(`/proc/${pid}/fd`).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith('socket:');
    } catch {
      return false;
    }
  }).length;

/** Silent sockets from `localAddress`, each opened again as soon as the agent closes it. */
function lockout(port: number, n: number, localAddress = '127.0.0.1'): { stop(): void } {
  let stopped = false;
  const socks = new Set<Socket>();
  const open = (): void => {
    const s = connect({ port, host: '127.0.0.1', localAddress });
    s.resume(); // reads (and drops) the hello, so it sees the agent close it
    s.on('error', () => {});
    s.on('close', () => {
      socks.delete(s);
      if (!stopped) open();
    });
    socks.add(s);
  };
  for (let i = 0; i < n; i++) open();
  return {
    stop: () => {
      stopped = true;
      for (const s of socks) s.destroy();
    },
  };
}

t.test('lockout: 32 silent sockets from 127.0.0.1 do not keep its clients out', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const before = await TestClient.ready(t, agent.port);
  const attacker = lockout(agent.port, 32);
  t.teardown(() => attacker.stop());
  await waitUntil(() => socketsOf(agent.pid) >= 32, 'the silent sockets');
  for (let i = 0; i < 5; i++) {
    const c = await TestClient.ready(t, agent.port);
    t.equal((await c.run(`echo in-${i}`, { cwd: '/' })).stdout.toString(), `in-${i}\n`);
    c.socket.destroy();
  }
  t.equal((await before.run('echo before', { cwd: '/' })).stdout.toString(), 'before\n');
});

t.test('slowloris: stalled sockets over many addresses stay under the global cap', async (t) => {
  const cap = 64;
  const agent = await startAgent(t, {
    slots: 1,
    extraArgs: ['--max-unauthenticated', String(cap)],
  });
  const log = agentLog(agent);
  const before = await TestClient.ready(t, agent.port);
  // Pings, as a real client does, so the agent does not take it for gone.
  let seq = 0;
  const heartbeat = setInterval(() => before.send({ type: 'ping', seq: seq++ }), 500);
  t.teardown(() => clearInterval(heartbeat));
  const body = Buffer.alloc(65535, 0x41);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(65536);
  const stalled: Socket[] = [];
  let closed = 0;
  t.teardown(() => stalled.forEach((s) => s.destroy()));
  // 300 sockets, 30 from each of 10 addresses, each a frame short of its last byte.
  for (let i = 0; i < 300; i++) {
    const s = connect({
      port: agent.port,
      host: '127.0.0.1',
      localAddress: `127.1.0.${(i % 10) + 1}`,
    });
    s.on('connect', () => s.write(Buffer.concat([header, body])));
    s.resume();
    s.on('error', () => {});
    s.on('close', () => closed++);
    stalled.push(s);
  }
  await waitUntil(() => closed >= 300 - cap, 'the agent to close all but the cap');
  const pushedOut = (log.text().match(/closed to make room for/g) ?? []).length;
  // How many go by this bound rather than another (the auth limit, a reset)
  // depends on the machine's load: 236 alone, 92-116 beside other tests.
  t.ok(pushedOut > 0, `the oldest were closed for the newcomers (${pushedOut})`);
  t.ok(socketsOf(agent.pid) <= cap + 16, `the agent holds at most about ${cap} of them`);
  const after = await TestClient.ready(t, agent.port);
  t.equal((await after.run('echo new', { cwd: '/' })).stdout.toString(), 'new\n', 'a newcomer');
  t.equal(
    (await before.run('echo kept', { cwd: '/' })).stdout.toString(),
    'kept\n',
    'an authenticated client is never closed for room',
  );
});

t.test('PendingConnections: per source, then the source holding the most', async (t) => {
  const p = new PendingConnections<string>(5, 3);
  t.same(p.admit('a1', '10.0.0.1'), []);
  t.same(p.admit('a2', '10.0.0.1'), []);
  t.same(p.admit('a3', '10.0.0.1'), []);
  t.same(p.admit('a4', '10.0.0.1'), ['a1'], 'over the source limit: its oldest');
  t.same(p.admit('b1', '10.0.0.2'), []);
  t.same(p.admit('c1', '::ffff:10.0.0.3'), []);
  t.same(p.admit('e1', '10.0.0.4'), ['a2'], 'over the global limit: the largest source');
  p.remove('a3');
  t.equal(p.countFrom('10.0.0.1'), 1);
  t.same(p.admit('d1', '2001:db8:1:2::5'), []);
  t.same(p.admit('d2', '2001:db8:1:2:ffff::9'), ['a4'], 'ties: the oldest goes');
  t.equal(p.countFrom('2001:db8:1:2:0:0:0:1'), 2, 'one /64 is one source');
  t.equal(sourceOf('::ffff:127.0.0.1'), '127.0.0.1');
  t.equal(sourceOf('fe80::1%eth0'), 'fe80:0:0:0::/64');
  t.equal(sourceOf('::1'), '0:0:0:0::/64');
});
