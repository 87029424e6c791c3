// The node's pty follows the client's terminal: mpmake on a terminal runs a
// recipe on a node under a pty of the terminal's size, and when the terminal
// is resized while the recipe runs (SIGWINCH to make's children, the shim
// among them), the node resizes that pty and the recipe sees the new size.
import t from 'tap';
import { PtyRun } from '../cluster-view/mpm.js';
import { startCluster } from '../helpers/cluster.js';
import { mpmakeCli } from '../helpers/paths.js';
import { cleanEnv } from '../helpers/run.js';

/** Prints its size, then again on SIGWINCH and ends; gives up (exit 1) after about 60 s. */
const RECIPE =
  "@trap 'stty size </dev/tty; exit 0' WINCH; stty size </dev/tty; " +
  'i=0; while [ $$i -lt 600 ]; do sleep 0.1; i=$$((i+1)); done; exit 1';

const sizes = (out: string): string[] => out.match(/^\d+ \d+(?=\r?$)/gm) ?? [];

t.test('a resize of the terminal reaches the recipe on the node', async (t) => {
  const cluster = await startCluster(t, 1, 1);
  const dir = t.testdir({ Makefile: `all:\n\t${RECIPE}\n` });
  const run = PtyRun.start(t, process.execPath, [mpmakeCli, '--mp-color=auto', '--mp-quiet'], {
    cwd: dir,
    cols: 160,
    rows: 40,
    env: cleanEnv({ TERM: 'xterm-256color', MPMAKE_HOSTS: cluster.hosts, MPMAKE_NO_FALLBACK: '1' }),
  });
  await run.waitFor((o) => sizes(o).length >= 1, 'the first size');
  t.same(sizes(run.output), ['40 160'], 'the node pty starts at the terminal size');
  run.term.resize(100, 30);
  const end = await run.exited;
  t.equal(end.exitCode, 0, run.output);
  t.same(sizes(run.output), ['40 160', '30 100'], 'the node pty followed the resize');
});
