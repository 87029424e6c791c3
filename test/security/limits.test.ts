/**
 * The limits an authenticated client meets: an environment over 1 MiB and
 * strings with NUL bytes are refused without running anything; a frame
 * over 16 MiB closes that connection only.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { MAX_ENV_BYTES } from '../../lib/agent/job-check.js';
import type { ErrorMessage } from '../../lib/protocol/messages.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../../lib/protocol/frame-codec.js';
import { startAgent, TestClient } from '../agent/client.js';

t.test('an environment over the limit is refused; nothing runs', async (t) => {
  const dir = t.testdir();
  const agent = await startAgent(t, { slots: 1 });
  const client = await TestClient.ready(t, agent.port);
  const marker = join(dir, 'marker');
  const env: Record<string, string> = { PATH: '/usr/bin:/bin' };
  for (let i = 0; i * 100_000 <= MAX_ENV_BYTES; i++) env[`V${i}`] = 'x'.repeat(100_000);
  const id = client.submit({ argv: ['/bin/sh', '-c', `touch ${marker}`], env });
  const err = await client.waitFor<ErrorMessage>((m) => m.type === 'error' && m.id === id);
  t.match(err, {
    code: 'MPM_ERR_JOB_REFUSED',
    message: /environment is \d+ bytes, over the limit/,
  });
  for (const bad of [
    { argv: ['/bin/sh', '-c', `touch ${marker}\0x`] },
    { argv: ['/bin/sh', '-c', `touch ${marker}`], env: { 'A\0B': '1' } },
    { argv: ['/bin/sh', '-c', `touch ${marker}`], cwd: `${dir}\0` },
    { argv: ['/bin/sh', '-c', `touch ${marker}`], umask: 0o1000 },
  ]) {
    const n = client.submit(bad);
    t.match(await client.waitFor((m) => m.type === 'error' && m.id === n), {
      code: 'MPM_ERR_JOB_REFUSED',
    });
  }
  t.equal((await client.run('echo fine')).stdout.toString(), 'fine\n', 'the connection lives on');
  t.notOk(existsSync(marker));
});

t.test('a frame over 16 MiB closes that connection only', async (t) => {
  const agent = await startAgent(t, { slots: 1 });
  const other = await TestClient.ready(t, agent.port);
  const big = await TestClient.ready(t, agent.port);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(DEFAULT_MAX_FRAME_BYTES + 1);
  big.socket.write(header);
  t.match(await big.waitFor((m) => m.type === 'error'), {
    code: 'MPM_ERR_PROTOCOL',
    message: /larger than the limit of 16777216/,
  });
  await big.closed;
  t.equal((await other.run('echo alive')).stdout.toString(), 'alive\n');
});
