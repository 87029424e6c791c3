/**
 * What leaves the client: variables that look like secrets stay there
 * unless allow-listed; the report and one stderr line name them (never
 * their values).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { heldBackLine } from '../../lib/coordinator/build-report.js';
import {
  envFilter,
  filterEnv,
  globToRegExp,
  looksSecret,
  nameWords,
} from '../../lib/coordinator/env-filter.js';
import { cleanMakeflagsForRemote } from '../../lib/coordinator/makeflags.js';
import { parseArgs } from '../../lib/coordinator/options.js';
import { remoteEnv } from '../../lib/coordinator/remote-env.js';
import { startCluster } from '../helpers/cluster.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';

t.test('looksSecret: words, endings, prefixes, names', async (t) => {
  const secret = [
    'API_KEY',
    'api_key',
    'apiKey',
    'OPENAI_API_KEY',
    'STRIPE_SECRET_KEY',
    'GITHUB_TOKEN',
    'GH_TOKEN',
    'NPM_TOKEN',
    'NODE_AUTH_TOKEN',
    'npm_config__authToken',
    'DB_PASSWORD',
    'PGPASSWORD',
    'MYSQL_PWD',
    'SMTP_PASS',
    'HTPASSWD',
    'GPG_PASSPHRASE',
    'AWS_ACCESS_KEY_ID',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
    'AWS_PROFILE',
    'SSH_AUTH_SOCK',
    'GPG_AGENT_INFO',
    'KRB5CCNAME',
    'GOOGLE_APPLICATION_CREDENTIALS',
    'DOCKER_AUTH_CONFIG',
    'SESSION_COOKIE',
    'CLIENTSECRET',
    'SIGNING_KEY2',
    'DEPLOY-TOKEN',
    'MY_PRIVATEKEY',
  ];
  const plain = [
    'PATH',
    'HOME',
    'PWD',
    'OLDPWD',
    'KEYBOARD',
    'KEYBOARD_LAYOUT',
    'XKB_KEYMAP',
    'MONKEY',
    'TOKENIZERS_PARALLELISM',
    'PASSTHROUGH',
    'BYPASS_CACHE',
    'AUTHOR',
    'CC',
    'CFLAGS',
    'MAKEFLAGS',
    'SSH_CONNECTION',
    'TERM',
    'LANG',
    'AWSCLI',
    'SECRETARY',
    'MPMAKE_SECRET_FILE',
  ];
  for (const name of secret) t.ok(looksSecret(name), `${name} looks like a secret`);
  for (const name of plain) t.notOk(looksSecret(name), `${name} does not`);
  t.same(nameWords('npm_config__authToken'), ['NPM', 'CONFIG', 'AUTH', 'TOKEN']);
  t.same(nameWords('API_KEY2'), ['API', 'KEY']);
});

t.test('allow beats deny and the rules; deny adds patterns', async (t) => {
  t.ok(globToRegExp('MY_*').test('MY_X'));
  t.notOk(globToRegExp('MY_*').test('XMY_X'), 'anchored');
  t.ok(globToRegExp('A?C').test('ABC'));
  t.notOk(globToRegExp('A.C').test('ABC'), 'a dot is a dot');
  const f = envFilter({
    allow: ['NPM_TOKEN', 'AWS_REGION', 'CORP_*'],
    deny: ['CORP_*', 'INTERNAL_*'],
  });
  t.notOk(f.holdsBack('NPM_TOKEN'));
  t.notOk(f.holdsBack('AWS_REGION'));
  t.ok(f.holdsBack('AWS_SECRET_ACCESS_KEY'));
  t.notOk(f.holdsBack('CORP_URL'), 'allow wins over deny');
  t.ok(f.holdsBack('INTERNAL_URL'));
  t.notOk(f.holdsBack('PATH'));
  const { env, heldBack } = filterEnv({ PATH: '/bin', GITHUB_TOKEN: 'x', INTERNAL_A: 'y' }, f);
  t.same(env, { PATH: '/bin' });
  t.same(heldBack, ['GITHUB_TOKEN', 'INTERNAL_A']);
});

t.test('remoteEnv holds back variables and their MAKEFLAGS definitions', async (t) => {
  t.equal(
    cleanMakeflagsForRemote(' -j4 -- API_TOKEN=abc OK=1 DB_PASS:=x', (n) => n !== 'OK'),
    ' -j4 -- OK=1',
  );
  const held = new Map<string, string>();
  const env = remoteEnv(
    {
      PATH: '/bin',
      GITHUB_TOKEN: 'ghp_x',
      MAKEFLAGS: ' -- DEPLOY_TOKEN=tok-1 VISIBLE=yes',
      MPMAKE_SOCK: '/tmp/s',
    },
    envFilter(),
    held,
  );
  t.same(env, { PATH: '/bin', MAKEFLAGS: ' -- VISIBLE=yes' });
  t.same([...held.keys()].sort(), ['DEPLOY_TOKEN', 'GITHUB_TOKEN']);
  t.same(remoteEnv({ AWS_SECRET_ACCESS_KEY: 'k' }), {}, 'the rules by default');
  t.equal(heldBackLine(new Map()), undefined);
  t.match(
    heldBackLine(
      new Map([
        ['B_KEY', 'word KEY'],
        ['A_TOKEN', 'word TOKEN'],
      ]),
    ),
    /^mpmake: kept on this machine.*: A_TOKEN \(word TOKEN\), B_KEY \(word KEY\) /,
  );
});

t.test('options: --mp-env-allow, MPMAKE_ENV_DENY, config arrays', async (t) => {
  const dir = t.testdir({ 'config.json': JSON.stringify({ envAllow: ['A_TOKEN', 'B_*'] }) });
  const { options } = parseArgs(['--mp-env-allow=X_KEY,Y_SECRET', 'all'], {
    MPMAKE_ENV_DENY: 'CORP_* OTHER',
  });
  t.same(options.envAllow, ['X_KEY', 'Y_SECRET']);
  t.same(options.envDeny, ['CORP_*', 'OTHER']);
  const fromConfig = parseArgs([`--mp-config=${join(dir, 'config.json')}`], {});
  t.same(fromConfig.options.envAllow, ['A_TOKEN', 'B_*']);
  t.throws(() => parseArgs(['--mp-env-deny=BAD=1'], {}), {
    code: 'MPM_ERR_USAGE',
    message: /--mp-env-deny must list variable names or patterns/,
  });
});

t.test('a build: what the node sees, the report and the one line', async (t) => {
  const cluster = await startCluster(t, 1, 2);
  const dir = t.testdir({
    Makefile: [
      'all: remote.env',
      'remote.env:',
      '\t@env > $@; echo "MAKEFLAGS=$$MAKEFLAGS" >> $@',
      '',
    ].join('\n'),
  });
  const values = {
    GITHUB_TOKEN: 'value-gh-1f3a',
    API_KEY: 'value-api-77c2',
    DB_PASSWORD: 'value-db-a01b',
    CORP_URL: 'value-corp-5e5e',
    ALLOWED_TOKEN: 'value-allowed-0c0c',
    KEYBOARD_LAYOUT: 'value-kbd-9d9d',
  };
  const report = join(dir, 'report.json');
  const r = await runMpmake(
    [
      `--mp-hosts=${cluster.hosts}`,
      '--mp-local=',
      `--mp-report=${report}`,
      '--mp-env-allow=ALLOWED_TOKEN',
      '--mp-env-deny=CORP_*',
      'DEPLOY_TOKEN=value-cmdline-4b4b',
    ],
    { cwd: dir, env: cleanEnv(values) },
  );
  t.equal(r.code, 0, r.stderr.toString());
  const seen = readFileSync(join(dir, 'remote.env'), 'utf8');
  t.match(seen, /^MPMAKE_NODE=test-agent-0$/m, 'the recipe ran on the node');
  for (const gone of ['value-gh', 'value-api', 'value-db', 'value-corp', 'value-cmdline']) {
    t.notOk(seen.includes(gone), `${gone}… did not reach the node`);
  }
  t.match(seen, /^ALLOWED_TOKEN=value-allowed-0c0c$/m, 'allow-listed');
  t.match(seen, /^KEYBOARD_LAYOUT=value-kbd-9d9d$/m, 'not a secret');
  const json = readFileSync(report, 'utf8');
  const held = (JSON.parse(json) as { heldBackEnv: string[] }).heldBackEnv;
  for (const name of ['API_KEY', 'CORP_URL', 'DB_PASSWORD', 'DEPLOY_TOKEN', 'GITHUB_TOKEN']) {
    t.ok(held.includes(name), `the report names ${name}`);
  }
  t.notOk(held.includes('ALLOWED_TOKEN') || held.includes('KEYBOARD_LAYOUT'));
  t.same(held, [...held].sort(), 'sorted');
  const stderr = r.stderr.toString();
  const lines = stderr.split('\n').filter((l) => l.includes('kept on this machine'));
  t.equal(lines.length, 1, 'one line on stderr');
  t.match(lines[0], /API_KEY.*CORP_URL.*DB_PASSWORD.*DEPLOY_TOKEN.*GITHUB_TOKEN/);
  for (const v of Object.values(values).concat('value-cmdline-4b4b')) {
    t.notOk(json.includes(v) || stderr.includes(v), `${v} is in neither report nor stderr`);
  }
});
