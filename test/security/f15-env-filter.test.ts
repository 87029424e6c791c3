/**
 * F15 (audit 2026-12): the environment filter shipped SSHPASS,
 * DATABASE_URL with a password in it and REDIS_PWD to nodes, and held back
 * AWS_CA_BUNDLE (a certificate path) with a warning on every build. Now
 * credential-shaped names and URLs with a password stay on the client,
 * paths and public settings go, jobs on the client itself get everything,
 * and the end line says which rule held each variable.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { envFilter, secretRule } from '../../lib/coordinator/env-filter.js';
import { remoteEnv } from '../../lib/coordinator/remote-env.js';
import { startCluster } from '../helpers/cluster.js';
import { cleanEnv, runMpmake } from '../helpers/run.js';

const DB_URL = 'postgres://app:S3cretDbPw@db/prod';

t.test('the audit names: held back, each with its rule', async (t) => {
  const held: Record<string, [string, string]> = {
    SSHPASS: ['hunter2', 'a known credential name'],
    DATABASE_URL: [DB_URL, 'a URL with user:password@'],
    http_proxy: ['http://me:pw@proxy:3128', 'a URL with user:password@'],
    REDIS_PWD: ['pw', 'ends in _PWD'],
    SMTPPASS: ['pw', 'PASS in the name'],
    DB_PASSCODE: ['1234', 'PASS in the name'],
    SENTRY_DSN: ['https://abc@o1.ingest.sentry.io/1', 'word DSN'],
    AZURE_STORAGE_CONNECTION_STRING: ['AccountKey=x', 'CONNECTION_STRING in the name'],
    BW_SESSION: ['x', 'a known credential name'],
    API_TOKEN: ['x', 'word TOKEN'],
    AWS_PROFILE: ['dev', 'prefix AWS_'],
    DB_PASSWORD_FILE: ['hunter2', 'word PASSWORD'],
  };
  for (const [name, [value, rule]] of Object.entries(held)) {
    t.equal(secretRule(name, value), rule, `${name}: ${rule}`);
  }
});

t.test('paths and public settings are shipped', async (t) => {
  const shipped: Record<string, string> = {
    AWS_CA_BUNDLE: '/etc/ssl/certs/ca.pem',
    REQUESTS_CA_BUNDLE: '/etc/ssl/certs/ca.pem',
    NODE_EXTRA_CA_CERTS: '/etc/ssl/corp.pem',
    AWS_SHARED_CREDENTIALS_FILE: '/home/u/.aws/credentials',
    DB_PASSWORD_FILE: '/run/secrets/db',
    SSL_KEY_FILE: './certs/key.pem',
    GIT_ASKPASS_FILE: '~/bin/askpass',
    MPMAKE_SECRET_FILE: 'relative/secret',
    DATABASE_URL: 'postgres://db/prod',
    REPO_URL: 'ssh://git@example.org/repo.git',
    PWD: '/src',
    OLDPWD: '/',
    PASSTHROUGH: '1',
    BYPASS_CACHE: '1',
    COMPASS_DIR: '/opt/compass',
    PATH: '/usr/bin:/bin',
  };
  for (const [name, value] of Object.entries(shipped)) {
    t.equal(secretRule(name, value), undefined, `${name}=${value} is shipped`);
  }
});

t.test('allow beats every rule; deny names its pattern; bytes are judged too', async (t) => {
  const f = envFilter({ allow: ['DATABASE_URL'], deny: ['CORP_*'] });
  t.equal(f.heldBy('DATABASE_URL', DB_URL), undefined);
  t.equal(f.heldBy('CORP_X', 'v'), '--mp-env-deny CORP_*');
  t.equal(
    f.heldBy('MIRROR', new Uint8Array(Buffer.from('https://u:p\xe9@m/', 'latin1'))),
    'a URL with user:password@',
  );
  const held = new Map<string, string>();
  const env = remoteEnv(
    { MAKEFLAGS: ` -- DATABASE_URL=${DB_URL} OK_URL=https://m/x`, AWS_CA_BUNDLE: '/ca.pem' },
    envFilter(),
    held,
  );
  t.same(
    env,
    { MAKEFLAGS: ' -- OK_URL=https://m/x', AWS_CA_BUNDLE: '/ca.pem' },
    'a command-line definition with a password is taken out of MAKEFLAGS, and only it',
  );
  t.same([...held], [['DATABASE_URL', 'a URL with user:password@']]);
});

t.test('a build: the node gets paths, not credentials; the client gets everything', async (t) => {
  const cluster = await startCluster(t, 1, 1);
  const dir = t.testdir({ Makefile: 'all:\n\t@env > "$(OUT)"\n' });
  const values = {
    SSHPASS: 'value-sshpass-71',
    DATABASE_URL: DB_URL,
    REDIS_PWD: 'value-redis-72',
    AWS_CA_BUNDLE: '/etc/ssl/value-ca-73.pem',
    SSL_CERT_FILE: '/etc/ssl/value-cert-74.pem',
  };
  const remote = await runMpmake(
    [`--mp-hosts=${cluster.hosts}`, '--mp-local=', `OUT=${join(dir, 'remote.env')}`],
    { cwd: dir, env: cleanEnv(values) },
  );
  t.equal(remote.code, 0, remote.stderr.toString());
  const seen = readFileSync(join(dir, 'remote.env'), 'utf8');
  t.match(seen, /^MPMAKE_NODE=test-agent-0$/m, 'ran on the node');
  for (const gone of ['value-sshpass', 'S3cretDbPw', 'value-redis']) {
    t.notOk(seen.includes(gone), `${gone} did not reach the node`);
  }
  t.match(seen, /^AWS_CA_BUNDLE=\/etc\/ssl\/value-ca-73\.pem$/m);
  t.match(seen, /^SSL_CERT_FILE=\/etc\/ssl\/value-cert-74\.pem$/m);
  const line = remote.stderr
    .toString()
    .split('\n')
    .filter((l) => l.includes('kept on this machine'));
  t.equal(line.length, 1);
  t.match(
    line[0],
    'DATABASE_URL (a URL with user:password@), REDIS_PWD (ends in _PWD), ' +
      'SSHPASS (a known credential name)',
  );
  t.notOk(line[0]!.includes('AWS_CA_BUNDLE'), 'no warning about the certificate path');

  // localhost/1: jobs run by an agent inside mpmake, on this machine.
  const local = await runMpmake(
    ['--mp-hosts=localhost/1', '--mp-local=', `OUT=${join(dir, 'local.env')}`],
    {
      cwd: dir,
      env: cleanEnv(values),
    },
  );
  t.equal(local.code, 0, local.stderr.toString());
  const here = readFileSync(join(dir, 'local.env'), 'utf8');
  t.match(here, /^MPMAKE_NODE=local$/m, 'ran on the agent inside mpmake');
  t.match(here, /^SSHPASS=value-sshpass-71$/m, 'nothing held back on the client');
  t.match(here, new RegExp(`^DATABASE_URL=${DB_URL}$`, 'm'));
  t.notMatch(local.stderr.toString(), /kept on this machine/);
});
