import t from 'tap';
import { splitMakeArgs } from '../../lib/coordinator/make-args.js';

t.test('-j forms are taken out of make argv', async (t) => {
  t.same(splitMakeArgs(['-j']), { args: [], jobs: 'all' });
  t.same(splitMakeArgs(['-j8', 'all']), { args: ['all'], jobs: 8 });
  t.same(splitMakeArgs(['-j', '8', 'all']), { args: ['all'], jobs: 8 });
  t.same(splitMakeArgs(['-j', 'all']), { args: ['all'], jobs: 'all' });
  t.same(splitMakeArgs(['--jobs=3']), { args: [], jobs: 3 });
  t.same(splitMakeArgs(['--jobs', '4', 'x']), { args: ['x'], jobs: 4 });
  t.same(splitMakeArgs(['--jobs']), { args: [], jobs: 'all' });
  t.same(splitMakeArgs(['-kj4']), { args: ['-k'], jobs: 4 });
  t.same(splitMakeArgs(['-j4k']), { args: ['-k'], jobs: 4 });
  t.same(splitMakeArgs(['-sj']), { args: ['-s'], jobs: 'all' });
  t.same(splitMakeArgs(['-j2', '-j5']), { args: [], jobs: 5 });
  t.same(splitMakeArgs(['-j0']), { args: [], jobs: 'all' });
});

t.test('option arguments are never mistaken for -j', async (t) => {
  t.same(splitMakeArgs(['-C', '-j8']), { args: ['-C', '-j8'], jobs: undefined });
  t.same(splitMakeArgs(['-Cj', 'x']), { args: ['-Cj', 'x'], jobs: undefined });
  t.same(splitMakeArgs(['-f', 'Makefile.j', '-k']), {
    args: ['-f', 'Makefile.j', '-k'],
    jobs: undefined,
  });
  t.same(splitMakeArgs(['-Otarget', '-j2']), { args: ['-Otarget'], jobs: 2 });
  t.same(splitMakeArgs(['--directory', '-j3']), { args: ['--directory', '-j3'], jobs: undefined });
  t.same(splitMakeArgs(['-kC', 'dir', '-j']), { args: ['-kC', 'dir'], jobs: 'all' });
  t.same(splitMakeArgs(['VAR=-j8', 'all']), { args: ['VAR=-j8', 'all'], jobs: undefined });
  t.same(splitMakeArgs(['--', '-j8']), { args: ['--', '-j8'], jobs: undefined });
});
