import t from 'tap';
import { parseHostList } from '../../lib/coordinator/host-list.js';

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
    message: /MPMAKE_HOSTS: cannot parse host entry "host:notaport\/x": slots "x"/,
  });
  t.throws(() => parseHostList('host:99999', '--mp-hosts'), { message: /port "99999"/ });
  t.throws(() => parseHostList('a/0', 'x'), { message: /slots "0"/ });
  t.throws(() => parseHostList('a b a', 'x'), { message: /listed twice/ });
  t.throws(() => parseHostList('h;rm:1', 'x'), { message: /not a host name/ });
});
