// Issue 16, what a new user runs into: every mpmake error before the build
// says what was wrong, where the value came from and what to do, in one
// format (`mpmake: MESSAGE [CODE]`), exits 2, and make never starts.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import t from 'tap';
import { spawnLocalAgent } from '../../lib/agent/spawn-agent.js';
import { noAnswer } from '../../lib/client/connect-problem.js';
import { parseArgs } from '../../lib/coordinator/options.js';
import { deadPort } from '../cluster-view/mpm.js';
import { startCluster } from '../helpers/cluster.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';
import { secretFile } from '../helpers/security.js';

const EXPECTED_HOSTS =
  'write HOST[:PORT][/SLOTS], e.g. "nodeA:7543/8", "[fd00::1]:7543" or "localhost/4"';

interface Case {
  name: string;
  args: string[];
  env?: Record<string, string>;
  config?: unknown;
  /** The whole of stderr; CONFIG and DIR stand for the config file and the test directory. */
  stderr: string;
}

const cases: Case[] = [
  {
    name: 'issue-16: --mp-make that does not exist exits 2, not 127',
    args: ['--mp-make=/nonexistent/make'],
    stderr:
      'mpmake: --mp-make: make program /nonexistent/make does not exist; give the path of an executable [MPM_ERR_USAGE]\n',
  },
  {
    name: 'issue-16: MPMAKE_MAKE not on PATH',
    args: [],
    env: { MPMAKE_MAKE: 'nosuchmake' },
    stderr:
      'mpmake: MPMAKE_MAKE: make program "nosuchmake" is not on PATH; install it or give its full path [MPM_ERR_USAGE]\n',
  },
  {
    name: 'issue-16: --mp-shell is checked before make starts',
    args: ['--mp-shell=/bin/nosuchsh'],
    stderr:
      'mpmake: --mp-shell: shell /bin/nosuchsh does not exist; give the path of an executable [MPM_ERR_USAGE]\n',
  },
  {
    name: 'issue-16: the secret file named by MPMAKE_SECRET_FILE, no raw errno text',
    args: ['--mp-hosts=127.0.0.1:1'],
    env: { MPMAKE_SECRET_FILE: '/nonexistent/secret' },
    stderr:
      "mpmake: MPMAKE_SECRET_FILE: the secret file /nonexistent/secret does not exist; give the file that holds the cluster's secret [MPM_ERR_USAGE]\n",
  },
  {
    name: 'issue-16: the secret file named by the config file',
    args: ['--mp-hosts=127.0.0.1:1'],
    config: { secretFile: '/nonexistent/secret' },
    stderr:
      'mpmake: config key "secretFile" in CONFIG: the secret file /nonexistent/secret does not exist; give the file that holds the cluster\'s secret [MPM_ERR_USAGE]\n',
  },
  {
    name: 'issue-16: config "hosts": 5 is refused',
    args: [],
    config: { hosts: 5 },
    stderr:
      'mpmake: config key "hosts" in CONFIG must be a string or an array of strings, not 5; e.g. ["nodeA:7543", "nodeB:7543/4"] [MPM_ERR_USAGE]\n',
  },
  {
    name: 'issue-16: 127.0.0.1::17541',
    args: ['--mp-hosts=127.0.0.1::17541'],
    stderr: `mpmake: --mp-hosts: cannot read host entry "127.0.0.1::17541": more than one ":" (an IPv6 address with a port goes in brackets: [::1]:7543); ${EXPECTED_HOSTS} [MPM_ERR_HOSTS]\n`,
  },
  {
    name: 'issue-16: a bad value names the variable it came from',
    args: [],
    env: { MPMAKE_COLOR: 'bogus' },
    stderr: 'mpmake: MPMAKE_COLOR must be auto or always or never, not "bogus" [MPM_ERR_USAGE]\n',
  },
  {
    name: 'issue-16: MPMAKE_TLS without a secret names MPMAKE_TLS',
    args: [],
    env: { MPMAKE_TLS: '1' },
    stderr:
      'mpmake: MPMAKE_TLS needs the cluster secret, from which the TLS key is derived: set --mp-secret-file, MPMAKE_SECRET_FILE or config key "secretFile" [MPM_ERR_USAGE]\n',
  },
];

for (const c of cases) {
  t.test(c.name, async (t) => {
    const dir = t.testdir({ Makefile: 'all:\n\t@echo make ran; touch ran\n' });
    // No test secret: these cases are about what the user set (or did not).
    const extra: Record<string, string> = { MPMAKE_SECRET_FILE: '', ...c.env };
    const config = join(dir, 'config.json');
    if (c.config !== undefined) {
      writeFileSync(config, JSON.stringify(c.config));
      extra['MPMAKE_CONFIG'] = config;
    }
    const args = c.args.map((a) => a.replace('DIR', dir));
    const r = await runMpmake(args, { cwd: dir, env: cleanEnv(extra) });
    t.equal(r.stderr.toString(), c.stderr.replace('CONFIG', config).replaceAll('DIR', dir));
    t.equal(r.code, 2, 'exit status 2');
    t.equal(r.stdout.toString(), '', 'nothing on stdout');
    t.notOk(existsSync(join(dir, 'ran')), 'make did not run');
  });
}

t.test('issue-16: config "hosts" as an array of strings', async (t) => {
  const [a, b] = [await deadPort(), await deadPort()];
  const dir = t.testdir({ Makefile: 'all:\n\t@echo make ran\n' });
  const config = join(dir, 'config.json');
  writeFileSync(config, JSON.stringify({ hosts: [`127.0.0.1:${a}`, `127.0.0.1:${b}/2,lzo`] }));
  const r = await runMpmake(['--mp-quiet'], {
    cwd: dir,
    env: cleanEnv({ MPMAKE_CONFIG: config }),
  });
  t.equal(r.code, 0);
  t.equal(r.stdout.toString(), 'make ran\n');
  t.equal(
    r.stderr.toString(),
    [
      `mpmake: config key "hosts" in ${config}: ",lzo" is a distcc option that does not apply here (jobs are not compressed); ignored`,
      `mpmake: leaving out 127.0.0.1:${a}: connection refused (is \`mpm agent\` running there?)`,
      `mpmake: leaving out 127.0.0.1:${b}: connection refused (is \`mpm agent\` running there?)`,
      'mpmake: no agent is usable; building locally with plain make',
      '',
    ].join('\n'),
  );
});

t.test('issue-16: a host off loopback and no secret: the settings to give', async (t) => {
  // The refusal comes before any connection: 198.18.0.1 is never dialled.
  const dir = t.testdir({ Makefile: 'all:\n\t@echo make ran\n' });
  const r = await runMpmake(['--mp-quiet', '--mp-hosts=198.18.0.1:7543'], {
    cwd: dir,
    env: cleanEnv({ MPMAKE_SECRET_FILE: '' }),
  });
  t.equal(r.code, 0);
  t.equal(r.stdout.toString(), 'make ran\n');
  t.equal(
    r.stderr.toString(),
    'mpmake: leaving out 198.18.0.1:7543: reached over TLS (the default off loopback), which is keyed by the cluster secret, and none is set: give the secret file (mpmake --mp-secret-file, mpm --secret-file, MPMAKE_SECRET_FILE or config key "secretFile"); for agents run with --insecure, --mp-insecure (mpm: --insecure) [MPM_ERR_USAGE]\n' +
      'mpmake: no agent is usable; building locally with plain make\n',
  );
});

t.test('issue-16: MPMAKE_LOCAL set and empty means no command stays local', async (t) => {
  const parse = (env: Record<string, string>): string[] => parseArgs([], env).options.local;
  t.same(parse({ MPMAKE_LOCAL: '' }), []);
  t.same(parse({ MPMAKE_LOCAL: 'cp, echo' }), ['cp', 'echo']);
  t.same(parse({}), ['mkdir', 'rm', 'touch', 'ln', 'echo', 'printf', 'true']);
  const dir = t.testdir();
  mkdirSync(join(dir, 'x'));
  const config = join(dir, 'x', 'c.json');
  writeFileSync(config, JSON.stringify({ local: ['cp', 'mv'], hosts: 'a b' }));
  const viaConfig = parseArgs([], { MPMAKE_CONFIG: config }).options;
  t.same(viaConfig.local, ['cp', 'mv'], 'an array of strings in the config file');
  t.same(
    viaConfig.hosts.map((h) => h.address),
    ['a:7543', 'b:7543'],
    'a string in the config file',
  );
});

t.test('issue-16: why an address in the host list is not an agent, and what to fix', async (t) => {
  const dir = t.testdir({ Makefile: 'all:\n\t@echo make ran\n' });
  const right = secretFile(dir, 'the cluster secret 16');
  const wrong = secretFile(dir, 'another secret, not ours', 'wrong');
  const agent = await spawnLocalAgent({ slots: 1, secretFile: right, env: cleanEnv() });
  const fenced = await spawnLocalAgent({
    slots: 1,
    secretFile: right,
    extraArgs: ['--allow', '127.0.0.2/32'],
    env: cleanEnv(),
  });
  // A web server answers with HTTP; a silent one never says a word.
  const http = createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  const silent = createServer(() => {});
  const sockets: Socket[] = [];
  silent.on('connection', (s) => sockets.push(s));
  for (const s of [http, silent]) await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    http.close();
    silent.close();
    await Promise.all([agent.stop(), fenced.stop()]);
  });
  const port = (s: typeof http): number => (s.address() as AddressInfo).port;
  const leftOut = async (host: string, extra: Record<string, string>): Promise<string> => {
    const r = await runMpmake(['--mp-quiet', `--mp-hosts=${host}`, '--mp-connect-timeout=1000'], {
      cwd: dir,
      env: cleanEnv(extra),
    });
    t.equal(r.code, 0, 'the build still runs, locally');
    const lines = r.stderr.toString().split('\n');
    t.equal(lines[1], 'mpmake: no agent is usable; building locally with plain make');
    return lines[0]!;
  };
  t.equal(
    await leftOut(`127.0.0.1:${port(http)}`, { MPMAKE_SECRET_FILE: right }),
    `mpmake: leaving out 127.0.0.1:${port(http)}: not an mpmake agent (it answered "HTTP…", an HTTP server): check the port in the host list (agents listen on 7543 by default) [MPM_ERR_NOT_AGENT]`,
  );
  t.equal(
    await leftOut(`127.0.0.1:${port(silent)}`, { MPMAKE_SECRET_FILE: right }),
    `mpmake: leaving out 127.0.0.1:${port(silent)}: connected, but no agent hello within 1000 ms: not an mpmake agent, or one started with --tls (then use --mp-tls)`,
  );
  t.equal(
    noAnswer(1000, false, false),
    'no connection within 1000 ms: the host is down or a firewall drops the port; check the host list, or raise --mp-connect-timeout',
    'a timeout before the connection is made does not suggest --mp-tls',
  );
  t.equal(
    await leftOut(agent.hostSpec, { MPMAKE_SECRET_FILE: wrong }),
    `mpmake: leaving out ${agent.hostSpec.replace(/\/\d+$/, '')}: the agent refused our secret (from MPMAKE_SECRET_FILE): it holds another one; give the cluster's secret file in MPMAKE_SECRET_FILE [MPM_ERR_AUTH]`,
  );
  t.equal(
    await leftOut(fenced.hostSpec, { MPMAKE_SECRET_FILE: right }),
    `mpmake: leaving out ${fenced.hostSpec.replace(/\/\d+$/, '')}: the agent closed the connection before its hello: this machine's address is not in its --allow list (the agent's log says so)`,
  );
});

t.test('issue-16: no summary line under -n or -q; the history is kept per tree', async (t) => {
  const cluster = await startCluster(t, 1, 2);
  // `cp` is not on the local list: both lines reach the coordinator.
  const dir = t.testdir({ Makefile: 'all: a b\na b:\n\t@cp Makefile $@\n' });
  const cache = join(dir, 'cache');
  const env = cleanEnv({
    MPMAKE_HOSTS: cluster.hosts,
    XDG_CACHE_HOME: cache,
    MPMAKE_NO_LEARN: '0',
  });
  for (const flag of ['-n', '-q', '--dry-run']) {
    const r = await runMpmake([flag], { cwd: dir, env });
    t.notMatch(r.stderr.toString(), /^mpmake: \d+ jobs:/m, `${flag}: no summary line`);
    t.notOk(existsSync(join(cache, 'mpmake')), `${flag}: no history kept`);
  }
  const built = await runMpmake(['-j2'], { cwd: dir, env });
  t.equal(built.code, 0);
  t.match(built.stderr.toString(), /^mpmake: 2 jobs: 2 remote/m, 'a build has its summary');
  const files = readdirSync(join(cache, 'mpmake', 'history'));
  t.equal(files.length, 1, 'one history file for this tree and goals');
  const history = JSON.parse(readFileSync(join(cache, 'mpmake', 'history', files[0]!), 'utf8'));
  t.match(history, { version: 2, jobs: 2, ok: true, times: { commands: { 'cp Makefile a': {} } } });
  const quiet = await runMpmake(['-j2', '--mp-no-learn', 'B=1'], { cwd: dir, env });
  t.equal(quiet.code, 0);
  t.equal(readdirSync(join(cache, 'mpmake', 'history')).length, 1, '--mp-no-learn keeps none');
});
