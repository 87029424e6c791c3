import type { WireText } from '../protocol/messages.js';

/**
 * Which environment variables stay on the client: those whose names look
 * like secrets (tokens, passwords, keys, cloud credentials, agent sockets),
 * unless allow-listed. A recipe's environment goes to whichever node runs
 * it, and every node's operator (and anyone who can read its processes'
 * environments there) would see them. Pure: variables in, decisions out.
 *
 * The rule for names: a name is split into words at every character that
 * is not a letter or digit and where a lower-case letter is followed by an
 * upper-case one (`apiKey` -> api, Key); trailing digits of a word are
 * ignored (`KEY2`). The name looks like a secret when
 * - it is one of SECRET_NAMES (`MYSQL_PWD`, `KRB5CCNAME`, `SSHPASS`, …);
 * - or a word is one of SECRET_WORDS (`API_KEY`, `DB_PASS`, `SSH_AUTH_SOCK`),
 *   so `KEYBOARD`, `MONKEY` or `TOKENIZER_PARALLELISM` do not;
 * - or a word ends with one of SECRET_SUFFIXES (`PGPASSWORD`, `GHTOKEN`,
 *   `CLIENTSECRET`, `OPENAI_APIKEY`);
 * - or a word holds PASS (`SSHPASS`, `DBPASS`), except NOT_PASS_WORDS
 *   (`BYPASS`, `PASSTHROUGH`, …); or a word is DSN (`SENTRY_DSN`);
 * - or it ends in `_PWD` (`REDIS_PWD`; not `PWD` or `OLDPWD`) or holds
 *   `CONNECTION_STRING`;
 * - or it starts with one of SECRET_PREFIXES (`AWS_` — all of AWS's),
 *   unless a word is `CA` (`AWS_CA_BUNDLE` names a certificate file).
 * Values count too: any variable whose value holds a URL with a password
 * (`postgres://app:pw@db/prod`) is held back, and a `*_FILE` variable whose
 * value is a path (`/…`, `./…`, `../…`, `~/…`) is shipped: it names a file,
 * not the secret. MPMAKE_SECRET_FILE is always shipped (each node has its
 * own copy; `mpm exec -- mpmake` on a node needs the name), and so is
 * MPMAKE_AUTH (`munge` or `secret`).
 * Case does not matter. `--mp-env-deny` patterns hold back more names;
 * `--mp-env-allow` names or patterns are shipped whatever the rules say.
 * Each decision comes with the rule that made it, for the end-of-build line.
 */

/** Whole words that make a name look like a secret. */
export const SECRET_WORDS: ReadonlySet<string> = new Set([
  'TOKEN',
  'TOKENS',
  'SECRET',
  'SECRETS',
  'PASSWORD',
  'PASSWORDS',
  'PASSWD',
  'PASS',
  'PASSPHRASE',
  'KEY',
  'KEYS',
  'CREDENTIAL',
  'CREDENTIALS',
  'CREDS',
  'AUTH',
  'COOKIE',
  'COOKIES',
]);

/** Word endings that make a name look like a secret (`PGPASSWORD`). */
export const SECRET_SUFFIXES: readonly string[] = [
  'TOKEN',
  'SECRET',
  'PASSWORD',
  'PASSWD',
  'PASSPHRASE',
  'APIKEY',
  'ACCESSKEY',
  'SECRETKEY',
  'PRIVATEKEY',
];

/** Name prefixes held back whatever follows. */
export const SECRET_PREFIXES: readonly string[] = ['AWS_'];

/** Names held back that the word rules do not catch. */
export const SECRET_NAMES: ReadonlySet<string> = new Set([
  'SSH_AUTH_SOCK',
  'GPG_AGENT_INFO',
  'MYSQL_PWD',
  'KRB5CCNAME',
  'GITHUB_TOKEN',
  'NPM_TOKEN',
  'SSHPASS',
  'BW_SESSION',
]);

/** Words holding PASS that are not about passwords (`BYPASS_CACHE`, `PASSTHROUGH`). */
export const NOT_PASS_WORDS: ReadonlySet<string> = new Set([
  'BYPASS',
  'COMPASS',
  'PASSTHROUGH',
  'PASSTHRU',
  'PASSIVE',
]);

/** Names the rules would catch that are not secrets. */
const NOT_SECRETS: ReadonlySet<string> = new Set(['MPMAKE_SECRET_FILE', 'MPMAKE_AUTH']);

/** A URL whose user information carries a password: `scheme://user:password@host`. */
const URL_WITH_PASSWORD = /[a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*:[^\s/?#@]*@/i;

/** A value that names a file rather than holding a secret: `/x`, `./x`, `../x`, `~/x`. */
const PATH_VALUE = /^(?:\/|\.\.?\/|~\/)[^\n]*$/;

/** The words of a variable name, upper-cased, trailing digits dropped. */
export function nameWords(name: string): string[] {
  return name
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .map((w) => w.toUpperCase().replace(/[0-9]+$/, ''))
    .filter(Boolean);
}

/**
 * The name rule that makes `name` look like a secret (see the top), or
 * undefined. A name with a word `CA` is a certificate authority setting,
 * public whatever its prefix (`AWS_CA_BUNDLE`).
 */
export function secretNameRule(name: string): string | undefined {
  const upper = name.toUpperCase();
  if (NOT_SECRETS.has(upper)) return undefined;
  if (SECRET_NAMES.has(upper)) return 'a known credential name';
  const words = nameWords(name);
  for (const w of words) {
    if (SECRET_WORDS.has(w)) return `word ${w}`;
    const suffix = SECRET_SUFFIXES.find((s) => w.endsWith(s));
    if (suffix !== undefined) return `a word ending in ${suffix}`;
    if (w.includes('PASS') && !NOT_PASS_WORDS.has(w)) return 'PASS in the name';
    if (w === 'DSN') return 'word DSN';
  }
  if (words.length > 1 && words[words.length - 1] === 'PWD') return 'ends in _PWD';
  if (upper.includes('CONNECTION_STRING')) return 'CONNECTION_STRING in the name';
  const prefix = SECRET_PREFIXES.find((p) => upper.startsWith(p));
  if (prefix !== undefined && !words.includes('CA')) return `prefix ${prefix}`;
  return undefined;
}

/**
 * The rule that makes a variable look like a secret, or undefined: its
 * value is a URL with a password; a `*_FILE` whose value is a path names
 * the file, not the secret, and is shipped; else a rule on its name.
 * Without `value`, only the name is judged.
 */
export function secretRule(name: string, value?: string): string | undefined {
  if (NOT_SECRETS.has(name.toUpperCase())) return undefined;
  if (value !== undefined) {
    if (URL_WITH_PASSWORD.test(value)) return 'a URL with user:password@';
    const words = nameWords(name);
    if (words[words.length - 1] === 'FILE' && PATH_VALUE.test(value)) return undefined;
  }
  return secretNameRule(name);
}

/** Whether `name` (with `value`, when given) looks like it holds a secret. */
export function looksSecret(name: string, value?: string): boolean {
  return secretRule(name, value) !== undefined;
}

/** A `*`/`?` pattern as an anchored, case-sensitive RegExp. */
export function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`);
}

export interface EnvFilterConfig {
  /** Names or patterns shipped even when they look like secrets. */
  allow?: readonly string[];
  /** Names or patterns held back besides those that look like secrets. */
  deny?: readonly string[];
}

/** Decides, per variable, whether it stays on the client, and by which rule. */
export interface EnvFilter {
  /** The rule that keeps the variable on the client, or undefined: it is shipped. */
  heldBy(name: string, value?: WireText): string | undefined;
  holdsBack(name: string, value?: WireText): boolean;
}

const asText = (v: WireText): string =>
  typeof v === 'string' ? v : Buffer.from(v.buffer, v.byteOffset, v.length).toString('latin1');

/** The filter for a configuration: allow beats deny and the built-in rules. */
export function envFilter(config: EnvFilterConfig = {}): EnvFilter {
  const allow = (config.allow ?? []).map((p) => ({ p, re: globToRegExp(p) }));
  const deny = (config.deny ?? []).map((p) => ({ p, re: globToRegExp(p) }));
  const heldBy = (name: string, value?: WireText): string | undefined => {
    if (allow.some(({ re }) => re.test(name))) return undefined;
    const denied = deny.find(({ re }) => re.test(name));
    if (denied) return `--mp-env-deny ${denied.p}`;
    return secretRule(name, value === undefined ? undefined : asText(value));
  };
  return { heldBy, holdsBack: (name, value) => heldBy(name, value) !== undefined };
}

/** Holds nothing back: for jobs that run on the client itself. */
export const SHIP_EVERYTHING: EnvFilter = {
  heldBy: () => undefined,
  holdsBack: () => false,
};

/** The built-in rules alone (no allow or deny list). */
export const DEFAULT_ENV_FILTER: EnvFilter = envFilter();

/**
 * `env` without the variables `filter` holds back, and the names held back
 * (sorted) with the rule that held each.
 */
export function filterEnv<T extends WireText>(
  env: Readonly<Record<string, T>>,
  filter: EnvFilter = DEFAULT_ENV_FILTER,
): { env: Record<string, T>; heldBack: string[]; rules: Map<string, string> } {
  const kept: Record<string, T> = {};
  const rules = new Map<string, string>();
  for (const [name, value] of Object.entries(env)) {
    const rule = filter.heldBy(name, value);
    if (rule !== undefined) rules.set(name, rule);
    else kept[name] = value;
  }
  return { env: kept, heldBack: [...rules.keys()].sort(), rules };
}
