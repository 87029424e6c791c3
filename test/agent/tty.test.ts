import t from 'tap';
import { FLOW_WINDOW_BYTES } from '../../lib/agent/remote-job.js';
import { startAgent, TestClient } from './client.js';

t.test('tty jobs run under a pseudo-terminal', async (t) => {
  const agent = await startAgent(t, { slots: 2 });
  const client = await TestClient.ready(t, agent.port);
  const tty = { cols: 123, rows: 45 };

  t.test('isatty, size, TERM, and no CRLF', async (t) => {
    const r = await client.run(
      '[ -t 1 ] && echo tty-out; [ -t 2 ] && echo tty-err >&2; stty size </dev/tty; echo "$TERM"; printf "a\\nb\\r\\n"',
      { tty },
    );
    t.equal(r.exit.code, 0);
    t.equal(r.stderr.length, 0, 'everything is stream 1');
    t.equal(r.stdout.toString(), 'tty-out\ntty-err\n45 123\nxterm-256color\na\nb\r\n');
  });

  t.test(
    'issue-16: the pty follows a resize from the client (SIGWINCH reaches the job)',
    async (t) => {
      const { until } = await import('./client.js');
      const id = client.submit({
        argv: [
          '/bin/sh',
          '-c',
          'trap "stty size </dev/tty; exit 0" WINCH; stty size </dev/tty; while :; do sleep 0.05; done',
        ],
        tty,
      });
      await until(() => client.receivedBytes(id) >= '45 123\r\n'.length - 1, 'the first size');
      client.send({ type: 'resize', id, cols: 101, rows: 33 });
      const r = await client.result(id);
      t.equal(r.exit.code, 0, 'the trap ran: the job got SIGWINCH');
      t.equal(r.stdout.toString(), '45 123\n33 101\n', 'stty size before and after');
    },
  );

  t.test('issue-16: a resize with a size out of range is refused', async (t) => {
    const { checkClientMessage } = await import('../../lib/protocol/messages.js');
    t.type(checkClientMessage({ type: 'resize', id: 1, cols: 80, rows: 24 }), 'object');
    t.equal(
      checkClientMessage({ type: 'resize', id: 1, cols: 0, rows: 24 }),
      'malformed resize: "/cols" Expected integer to be greater or equal to 1',
    );
  });

  t.test('tput sees the columns', async (t) => {
    const r = await client.run('tput cols 2>/dev/null || stty size | cut -d" " -f2', {
      tty,
      env: { PATH: '/usr/bin:/bin', TERM: 'xterm-256color' },
    });
    t.equal(r.stdout.toString().trim(), '123');
  });

  t.test('exit status and signal', async (t) => {
    t.match((await client.run('exit 3', { tty })).exit, { code: 3, signal: null });
    t.match((await client.run('kill -TERM $$', { tty })).exit, { code: null, signal: 'SIGTERM' });
  });

  t.test('stdin is not the terminal', async (t) => {
    const r = await client.run('[ -t 0 ] || echo not-tty; cat', { tty });
    t.equal(r.stdout.toString(), 'not-tty\n');
  });

  // Regression: when the last slave fd closed, libuv could report EOF on
  // the master while the kernel still held the tail of the output.
  t.test('the tail of a large output is never lost', async (t) => {
    const expected = Array.from({ length: 100_000 }, (_, i) => `${i + 1}\n`).join('');
    for (let i = 0; i < 5; i++) {
      const r = await client.run('seq 1 100000', { tty });
      t.equal(r.stdout.length, expected.length, `run ${i}: all bytes`);
      t.ok(r.stdout.toString() === expected, `run ${i}: content`);
    }
  });

  // Regression: node-pty drops what is unread 200 ms after the process
  // exits. A job that ends while paused by flow control must lose nothing.
  t.test('output held back by flow control when the job exits is not lost', async (t) => {
    client.autoAck = false;
    t.teardown(() => {
      client.autoAck = true;
    });
    const total = FLOW_WINDOW_BYTES + 3000;
    const id = client.submit({ argv: ['/bin/sh', '-c', `head -c ${total} /dev/zero`], tty });
    const { until } = await import('./client.js');
    await until(() => client.receivedBytes(id) > FLOW_WINDOW_BYTES, 'a window of output');
    // Give the job time to exit with its last bytes unread, and node-pty its 200 ms.
    await new Promise((r) => setTimeout(r, 600));
    client.send({ type: 'ack', id, bytes: client.receivedBytes(id) });
    client.autoAck = true;
    const r = await client.result(id);
    t.equal(r.exit.code, 0);
    t.equal(r.stdout.length, total);
  });
});
