import t from 'tap';
import {
  cleanMakeflagsForRemote,
  composeMakeflags,
  jobserverAuthOf,
} from '../../lib/coordinator/makeflags.js';

t.test('remote MAKEFLAGS loses SHELL, jobserver and sync-mutex words', async (t) => {
  t.equal(
    cleanMakeflagsForRemote(' -j4 --jobserver-auth=3,3 -- SHELL=/tmp/mpmake-x/sh FOO=1'),
    ' -j4 -- FOO=1',
  );
  t.equal(
    cleanMakeflagsForRemote('ks -j8 --jobserver-auth=fifo:/tmp/x --sync-mutex=fnm:/tmp/m'),
    'ks -j8',
  );
  t.equal(
    cleanMakeflagsForRemote(
      ' --jobserver-fds=3,4 -- SHELL=/x/sh MPMAKE_TARGET=$$@ MPMAKE_PREREQS=$$^\\ $$|',
    ),
    '',
  );
  t.equal(cleanMakeflagsForRemote('-- A=has\\ space SHELL:=/x'), '-- A=has\\ space');
});

t.test('make gets -jN and our pool, keeping user flags and variables', async (t) => {
  t.equal(composeMakeflags(undefined, 8, 3), ' -j8 --jobserver-auth=3,3');
  t.equal(composeMakeflags(undefined, 1, 3), ' --jobserver-auth=3,3');
  t.equal(composeMakeflags('k -- X=1', 1, undefined), ' -k -- X=1', 'serial: no jobserver');
  t.equal(composeMakeflags('ks -- X=1', 4, 3), ' -ks -j4 --jobserver-auth=3,3 -- X=1');
  t.equal(composeMakeflags('kj8 --jobserver-auth=5,6', 2, 3), ' -k -j2 --jobserver-auth=3,3');
  t.equal(composeMakeflags(' -j16 --jobserver-auth=fifo:/p', 2, 3), ' -j2 --jobserver-auth=3,3');
});

t.test('the last jobserver word wins', async (t) => {
  t.equal(jobserverAuthOf(' -j4 --jobserver-auth=3,4 --jobserver-auth=fifo:/tmp/f'), 'fifo:/tmp/f');
  t.equal(jobserverAuthOf(' --jobserver-fds=5,6'), '5,6');
  t.equal(jobserverAuthOf('-k'), undefined);
});
