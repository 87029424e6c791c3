import t from 'tap';
import {
  cleanMakeflagsForRemote,
  composeMakeflags,
  jobserverAuthOf,
  jobsInMakeflags,
} from '../../lib/coordinator/makeflags.js';

// The jobserver word stays, as make gives it to every job (issue 14: the
// suite's `echo "$$MAKEFLAGS"` saw no --jobserver-auth on a node).
t.test('remote MAKEFLAGS loses SHELL and sync-mutex words, keeps the jobserver word', async (t) => {
  t.equal(
    cleanMakeflagsForRemote(' -j4 --jobserver-auth=3,4 -- SHELL=/tmp/mpmake-x/sh FOO=1'),
    ' -j4 --jobserver-auth=3,4 -- FOO=1',
  );
  t.equal(
    cleanMakeflagsForRemote('ks -j8 --jobserver-auth=fifo:/tmp/x --sync-mutex=fnm:/tmp/m'),
    'ks -j8 --jobserver-auth=fifo:/tmp/x',
  );
  t.equal(
    cleanMakeflagsForRemote(
      ' --sync-mutex=fnm:/tmp/m -- SHELL=/x/sh MPMAKE_TARGET=$$@ MPMAKE_PREREQS=$$^\\ $$|',
    ),
    '',
  );
  t.equal(cleanMakeflagsForRemote('-- A=has\\ space SHELL:=/x'), '-- A=has\\ space');
});

t.test('make gets -jN and our pool, keeping user flags and variables', async (t) => {
  t.equal(composeMakeflags(undefined, 8, '3,4'), ' -j8 --jobserver-auth=3,4');
  t.equal(composeMakeflags(undefined, 1, '3,4'), ' --jobserver-auth=3,4');
  t.equal(composeMakeflags('k -- X=1', 1, undefined), ' -k -- X=1', 'serial: no jobserver');
  t.equal(composeMakeflags('ks -- X=1', 4, '3,4'), ' -ks -j4 --jobserver-auth=3,4 -- X=1');
  t.equal(composeMakeflags('kj8 --jobserver-auth=5,6', 2, '3,4'), ' -k -j2 --jobserver-auth=3,4');
  t.equal(
    composeMakeflags(' -j16 --jobserver-auth=3,4', 2, 'fifo:/tmp/GMfifo7'),
    ' -j2 --jobserver-auth=fifo:/tmp/GMfifo7',
  );
});

t.test('-j in MAKEFLAGS from the environment, as make reads it', async (t) => {
  t.equal(jobsInMakeflags('-j2 --no-print-directory'), 2);
  t.equal(jobsInMakeflags(' -k -j'), 'all');
  t.equal(jobsInMakeflags('kj4'), 4);
  t.equal(jobsInMakeflags(' --jobs=3 -j5'), 5, 'the last one');
  t.equal(jobsInMakeflags(' -k -- J=-j4'), undefined, 'not in the variables');
  t.equal(jobsInMakeflags(undefined), undefined);
});

t.test('the last jobserver word wins', async (t) => {
  t.equal(jobserverAuthOf(' -j4 --jobserver-auth=3,4 --jobserver-auth=fifo:/tmp/f'), 'fifo:/tmp/f');
  t.equal(jobserverAuthOf(' --jobserver-fds=5,6'), '5,6');
  t.equal(jobserverAuthOf('-k'), undefined);
});
