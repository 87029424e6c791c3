/**
 * Which environment variables stay on the client: those whose names look
 * like secrets (tokens, passwords, keys, cloud credentials, agent sockets),
 * unless allow-listed. A recipe's environment goes to whichever node runs
 * it, and every node's operator (and anyone who can read its processes'
 * environments there) would see them. Pure: names in, decisions out.
 *
 * The rule for names: a name is split into words at every character that
 * is not a letter or digit and where a lower-case letter is followed by an
 * upper-case one (`apiKey` -> api, Key); trailing digits of a word are
 * ignored (`KEY2`). The name looks like a secret when
 * - a word is one of SECRET_WORDS (`API_KEY`, `DB_PASS`, `SSH_AUTH_SOCK`),
 *   so `KEYBOARD`, `MONKEY`, `TOKENIZER_PARALLELISM` or `PASSTHROUGH` do not;
 * - or a word ends with one of SECRET_SUFFIXES (`PGPASSWORD`, `GHTOKEN`,
 *   `CLIENTSECRET`, `OPENAI_APIKEY`);
 * - or it starts with one of SECRET_PREFIXES (`AWS_` — all of AWS's);
 * - or it is one of SECRET_NAMES (`MYSQL_PWD`, `KRB5CCNAME`, …);
 * - and it is not MPMAKE_SECRET_FILE, which names a file (each node has
 *   its own copy; `mpm exec -- mpmake` on a node needs the name).
 * Case does not matter. `--mp-env-deny` patterns hold back more names;
 * `--mp-env-allow` names or patterns are shipped whatever the rules say.
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
]);

/** Names the rules would catch that are not secrets. */
const NOT_SECRETS: ReadonlySet<string> = new Set(['MPMAKE_SECRET_FILE']);

/** The words of a variable name, upper-cased, trailing digits dropped. */
export function nameWords(name: string): string[] {
  return name
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .split(/[^A-Za-z0-9]+/)
    .map((w) => w.toUpperCase().replace(/[0-9]+$/, ''))
    .filter(Boolean);
}

/** Whether `name` looks like it holds a secret, by the rule above. */
export function looksSecret(name: string): boolean {
  const upper = name.toUpperCase();
  if (NOT_SECRETS.has(upper)) return false;
  if (SECRET_NAMES.has(upper)) return true;
  if (SECRET_PREFIXES.some((p) => upper.startsWith(p))) return true;
  return nameWords(name).some(
    (w) => SECRET_WORDS.has(w) || SECRET_SUFFIXES.some((s) => w.endsWith(s)),
  );
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

/** Decides, per variable name, whether it stays on the client. */
export interface EnvFilter {
  holdsBack(name: string): boolean;
}

/** The filter for a configuration: allow beats deny and the built-in rules. */
export function envFilter(config: EnvFilterConfig = {}): EnvFilter {
  const allow = (config.allow ?? []).map(globToRegExp);
  const deny = (config.deny ?? []).map(globToRegExp);
  const cache = new Map<string, boolean>();
  return {
    holdsBack(name: string): boolean {
      let held = cache.get(name);
      if (held === undefined) {
        held =
          !allow.some((re) => re.test(name)) &&
          (looksSecret(name) || deny.some((re) => re.test(name)));
        cache.set(name, held);
      }
      return held;
    },
  };
}

/** The built-in rules alone (no allow or deny list). */
export const DEFAULT_ENV_FILTER: EnvFilter = envFilter();

/** `env` without the variables `filter` holds back, and their names (sorted). */
export function filterEnv<T>(
  env: Readonly<Record<string, T>>,
  filter: EnvFilter = DEFAULT_ENV_FILTER,
): { env: Record<string, T>; heldBack: string[] } {
  const kept: Record<string, T> = {};
  const heldBack: string[] = [];
  for (const [name, value] of Object.entries(env)) {
    if (filter.holdsBack(name)) heldBack.push(name);
    else kept[name] = value;
  }
  return { env: kept, heldBack: heldBack.sort() };
}
