import t from 'tap';
import { availableParallelism } from 'node:os';
import { parseHostList } from '../../lib/client/host-list.js';

t.test('host entries', async (t) => {
  const hosts = parseHostList(
    'nodeA:7000/8 nodeB/4,  10.1.2.3 [::1]:9000/2 localhost/3',
    'MPMAKE_HOSTS',
  );
  t.same(
    hosts.map((h) => [h.address, h.port, h.slots, h.local]),
    [
      ['nodeA:7000', 7000, 8, false],
      ['nodeB:7543', 7543, 4, false],
      ['10.1.2.3:7543', 7543, undefined, false],
      ['[::1]:9000', 9000, 2, false],
      ['local', 0, 3, true],
    ],
  );
  t.same(parseHostList('  ', 'x'), []);
});

t.test('bad entries name the entry and the source', async (t) => {
  t.throws(() => parseHostList('host:notaport/x', 'MPMAKE_HOSTS'), {
    code: 'MPM_ERR_HOSTS',
    message: /MPMAKE_HOSTS: cannot read host entry "host:notaport\/x": slots "x"/,
  });
  t.throws(() => parseHostList('host:99999', '--mp-hosts'), { message: /port "99999"/ });
  t.throws(() => parseHostList('a/0', 'x'), { message: /slots "0"/ });
  t.throws(() => parseHostList('a b a', 'x'), { message: /listed twice/ });
  t.throws(() => parseHostList('h;rm:1', 'x'), { message: /not a host name/ });
});

const EXPECTED =
  'write HOST[:PORT][/SLOTS], e.g. "nodeA:7543/8", "[fd00::1]:7543" or "localhost/4"';

t.test('issue 16: a strict parser, with messages that say what to write', async (t) => {
  const cases: [string, string][] = [
    [
      '127.0.0.1::17541',
      'MPMAKE_HOSTS: cannot read host entry "127.0.0.1::17541": more than one ":" (an IPv6 address with a port goes in brackets: [::1]:7543)',
    ],
    [
      'nodeA:',
      'MPMAKE_HOSTS: cannot read host entry "nodeA:": port "" is not a number from 1 to 65535',
    ],
    [':7543', 'MPMAKE_HOSTS: cannot read host entry ":7543": no host name'],
    [
      'node_a',
      'MPMAKE_HOSTS: cannot read host entry "node_a": "node_a" is not a host name or IP address',
    ],
    [
      '[1.2.3.4]:9',
      'MPMAKE_HOSTS: cannot read host entry "[1.2.3.4]:9": "1.2.3.4" in brackets is not an IPv6 address',
    ],
    ['[::1', 'MPMAKE_HOSTS: cannot read host entry "[::1": "[" without its "]"'],
    [
      'a/4/2',
      'MPMAKE_HOSTS: cannot read host entry "a/4/2": slots "4/2" is not a whole number from 1 to 99999',
    ],
    [
      '@nodeA',
      'MPMAKE_HOSTS: cannot read host entry "@nodeA": distcc\'s ssh form (@HOST) is not supported: run `mpm agent` on that host and list it as HOST:PORT',
    ],
    [
      'me@nodeA/4',
      'MPMAKE_HOSTS: cannot read host entry "me@nodeA/4": distcc\'s ssh form (@HOST) is not supported: run `mpm agent` on that host and list it as HOST:PORT',
    ],
  ];
  for (const [text, message] of cases) {
    t.throws(
      () => parseHostList(text, 'MPMAKE_HOSTS'),
      {
        code: 'MPM_ERR_HOSTS',
        message: `${message}; ${EXPECTED}`,
      },
      text,
    );
  }
  t.throws(() => parseHostList('--localslots=4 a', '--mp-hosts'), {
    message: `--mp-hosts: unknown option "--localslots=4" in the host list (only distcc's --randomize is accepted); ${EXPECTED}`,
  });
  t.throws(() => parseHostList('localhost/2 localhost', 'x'), {
    message: 'x: host localhost (this machine) is listed twice; list each once',
  });
  t.same(
    parseHostList('fd00::1 10.0.0.1:80', 'x').map((h) => h.address),
    ['[fd00::1]:7543', '10.0.0.1:80'],
    'a bare IPv6 address takes the default port',
  );
});

t.test("issue 16: distcc's DISTCC_HOSTS forms", async (t) => {
  const notes: string[] = [];
  const hosts = parseHostList(
    '--randomize localhost nodeA/4,lzo nodeB:7000/2,lzo,cpp nodeC,nodeD',
    'MPMAKE_HOSTS',
    notes,
  );
  t.same(
    hosts.map((h) => [h.address, h.slots, h.local]),
    [
      ['local', availableParallelism(), true],
      ['nodeA:7543', 4, false],
      ['nodeB:7000', 2, false],
      ['nodeC:7543', undefined, false],
      ['nodeD:7543', undefined, false],
    ],
    "localhost = the client's own slots; /N limits; commas still separate entries",
  );
  t.same(
    notes,
    [
      'MPMAKE_HOSTS: "--randomize" is a distcc option that does not apply here (mpmake places every job on the least-loaded node); ignored',
      'MPMAKE_HOSTS: ",lzo" is a distcc option that does not apply here (jobs are not compressed); ignored',
      'MPMAKE_HOSTS: ",cpp" is a distcc option that does not apply here (there is no preprocessing step to send); ignored',
    ],
    'one note per option, however often it appears',
  );
  t.same(
    parseHostList('localhost/3', 'x').map((h) => [h.address, h.slots, h.local]),
    [['local', 3, true]],
  );
  t.same(
    parseHostList('localhost:7543', 'x').map((h) => [h.address, h.local]),
    [['localhost:7543', false]],
    'with a port, localhost is an agent on this machine',
  );
});
