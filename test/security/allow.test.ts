/**
 * Who may connect (`mpm agent --allow CIDR`): a client from elsewhere is
 * closed at once, before hello, and logged. Loopback has all of
 * 127.0.0.0/8, so a client bound to 127.0.0.1 and one bound to 127.0.0.2
 * come from different networks.
 */
import { connect, createServer } from 'node:net';
import t from 'tap';
import { resolveAgentOptions } from '../../lib/agent/agent-options.js';
import { AllowList, parseCidr } from '../../lib/agent/allow-list.js';
import { startAgent, TestClient } from '../agent/client.js';
import { agentLog, mpm, secretFile, waitUntil } from '../helpers/security.js';

const SECRET = 'allow-test secret 0b77';

t.test('AllowList: IPv4, IPv6, IPv4-mapped; bad networks name --allow', async (t) => {
  const list = new AllowList(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '::1']);
  for (const ok of ['10.1.2.3', '::ffff:10.9.9.9', '192.168.1.7', 'fd12::1', '::1']) {
    t.ok(list.allows(ok), ok);
  }
  for (const no of ['11.0.0.1', '192.168.1.8', 'fe80::1', '::2', '127.0.0.1', 'junk', undefined]) {
    t.notOk(list.allows(no), String(no));
  }
  t.same(parseCidr('10.0.0.0/8'), { address: '10.0.0.0', prefix: 8, family: 'ipv4' });
  t.same(parseCidr('::1'), { address: '::1', prefix: 128, family: 'ipv6' });
  for (const bad of ['10.0.0.0/33', '::/129', 'host.example/8', '10.0.0/8', '', '1.2.3.4/x']) {
    t.throws(() => parseCidr(bad), { code: 'MPM_ERR_USAGE', message: /--allow must be/ }, bad);
  }
});

t.test('defaults: anywhere with a secret, loopback only without', async (t) => {
  const dir = t.testdir();
  const open = await resolveAgentOptions({ secretFile: secretFile(dir, SECRET) });
  t.equal(open.allow, undefined, 'with a secret: any network');
  const closed = await resolveAgentOptions({});
  t.ok(closed.allow?.allows('127.0.0.1') && closed.allow.allows('127.9.9.9'));
  t.ok(closed.allow?.allows('::1') && closed.allow.allows('::ffff:127.0.0.1'));
  t.notOk(closed.allow?.allows('10.0.0.1'), 'no secret: nobody from elsewhere');
  const insecure = await resolveAgentOptions({ listen: '0.0.0.0:0', insecure: true });
  t.notOk(insecure.allow?.allows('10.0.0.1'), '--insecure alone still means loopback only');
  const told = await resolveAgentOptions({
    listen: '0.0.0.0:0',
    insecure: true,
    allow: ['10.0.0.0/8'],
  });
  t.ok(told.allow?.allows('10.0.0.1'), 'unless --allow says otherwise');
  t.notOk(told.allow?.allows('127.0.0.1'), '--allow replaces the default');
});

t.test('mpm agent --allow with a bad network exits 2 naming it', async (t) => {
  const r = await mpm(['agent', '--listen', '127.0.0.1:0', '--allow', '10.0.0.0/40']);
  t.equal(r.code, 2);
  t.match(r.stderr, /--allow must be an IPv4 or IPv6 network.*"10\.0\.0\.0\/40"/);
});

/** Connects to the agent from `localAddress`; resolves with what it received before close. */
function connectFrom(
  port: number,
  host: string,
  localAddress: string,
): Promise<{ received: number; localPort: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, localAddress });
    let received = 0;
    let localPort = 0;
    socket.on('connect', () => (localPort = socket.localPort ?? 0));
    socket.on('data', (b: Buffer) => (received += b.length));
    socket.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') reject(err);
    });
    socket.on('close', () => resolve({ received, localPort }));
  });
}

t.test(
  '--allow 127.0.0.2/32: 127.0.0.1 is refused before hello; 127.0.0.2 is served',
  async (t) => {
    const dir = t.testdir();
    const agent = await startAgent(t, {
      slots: 1,
      secretFile: secretFile(dir, SECRET),
      extraArgs: ['--allow', '127.0.0.2/32'],
    });
    const log = agentLog(agent);
    const refused = await connectFrom(agent.port, '127.0.0.1', '127.0.0.1');
    t.equal(refused.received, 0, 'not a byte, not even hello');
    await waitUntil(
      () =>
        log
          .text()
          .includes(
            `refused connection from 127.0.0.1:${refused.localPort}: not in --allow (127.0.0.2/32)`,
          ),
      'the log line',
    );
    const socket = connect({ host: '127.0.0.1', port: agent.port, localAddress: '127.0.0.2' });
    const client = await TestClient.attach(t, socket);
    await client.authenticate(Buffer.from(SECRET));
    t.equal((await client.run('echo served')).stdout.toString(), 'served\n');
    t.notOk(/refused connection from 127\.0\.0\.2/.test(log.text()));
  },
);

const hasV6 = await new Promise<boolean>((resolve) => {
  const probe = createServer();
  probe.once('error', () => resolve(false));
  probe.listen(0, '::1', () => probe.close(() => resolve(true)));
});

t.test(
  'IPv6: --allow 127.0.0.0/8 refuses ::1',
  { skip: hasV6 ? false : 'no IPv6 loopback here' },
  async (t) => {
    const dir = t.testdir();
    const agent = await startAgent(t, {
      slots: 1,
      listen: '[::1]:0',
      secretFile: secretFile(dir, SECRET),
      extraArgs: ['--allow', '127.0.0.0/8'],
    });
    const log = agentLog(agent);
    const refused = await connectFrom(agent.port, '::1', '::1');
    t.equal(refused.received, 0);
    await waitUntil(
      () => /refused connection from ::1:\d+: not in --allow/.test(log.text()),
      'log',
    );

    const allowed = await startAgent(t, {
      slots: 1,
      listen: '[::1]:0',
      secretFile: secretFile(dir, SECRET, 's2'),
      extraArgs: ['--allow', '::1/128'],
    });
    const client = await TestClient.attach(t, connect({ host: '::1', port: allowed.port }));
    await client.authenticate(Buffer.from(SECRET));
    t.equal((await client.run('echo v6')).stdout.toString(), 'v6\n');
  },
);
