import t from 'tap';
import { encodeFrame, FrameDecoder } from '../../lib/protocol/frame-codec.js';
import { checkAgentMessage, checkClientMessage } from '../../lib/protocol/messages.js';

const messages = [
  { type: 'ping', seq: 1 },
  { type: 'data', id: 7, stream: 2, bytes: new Uint8Array([0, 255, 10, 13]) },
  { type: 'job', id: 3, argv: ['/bin/sh', '-c', 'echo ü'], cwd: '/', env: { A: 'b' }, umask: 18 },
];

t.test('any chunking decodes the same frames', async (t) => {
  const stream = Buffer.concat(messages.map(encodeFrame));
  const oneByOne = new FrameDecoder();
  const out: unknown[] = [];
  for (const b of stream) out.push(...oneByOne.push(Buffer.from([b])));
  t.same(out, messages);
  t.same(new FrameDecoder().push(stream), messages, 'many frames per chunk');
});

t.test('oversized length is refused before buffering', async (t) => {
  const d = new FrameDecoder(1024);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(1025);
  t.throws(() => d.push(header), { code: 'MPM_ERR_FRAME_TOO_LARGE' });
});

t.test('EOF mid-frame and invalid msgpack are errors', async (t) => {
  const d = new FrameDecoder();
  d.push(encodeFrame({ type: 'ping', seq: 1 }).subarray(0, 6));
  t.throws(() => d.end(), { code: 'MPM_ERR_PROTOCOL' });
  const bad = Buffer.from([0, 0, 0, 1, 0x81]); // a map header with no entries after it
  t.throws(() => new FrameDecoder().push(bad), { code: 'MPM_ERR_PROTOCOL' });
});

t.test('validation names what is wrong', async (t) => {
  t.match(checkClientMessage({ type: 'job', id: 1 }), /^malformed job: /);
  t.match(checkClientMessage({ type: 'rm -rf' }), /unknown message type/);
  t.equal(checkClientMessage([1, 2]), 'message is not a map');
  t.equal(
    checkAgentMessage({ type: 'exit', id: 1, code: 0, signal: null, runMs: 1, queuedMs: 0 })
      .constructor,
    Object,
  );
});
