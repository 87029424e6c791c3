/**
 * yargs' complaints about a command line, in mpm's words: yargs names an
 * unknown option by its parsed key (`bogus-thing, bogusThing` for
 * `--bogus-thing`, `such` for `--no-such`) and an unknown command as an
 * "argument"; the user should read back what they typed.
 */

/** yargs' message for unknown options and words (its English locale, which mpm sets). */
const UNKNOWN = /^Unknown arguments?: (.*)$/;

/** The keys yargs may give an option typed as `word` (`--no-x-y`: no-x-y, noXY, x-y, xY). */
function keysOf(word: string): string[] {
  const name = word.replace(/^-+/, '').split('=')[0]!;
  const camel = (s: string): string => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
  const keys = [name, camel(name)];
  if (name.startsWith('no-')) keys.push(name.slice(3), camel(name.slice(3)));
  return keys;
}

/**
 * What to say for a yargs failure `message` on `argv` (the words after
 * `mpm`): the command it concerns, if one was named, and the problem with
 * each unknown option as typed (`--bogus`, `-z`) and each stray word.
 * Messages other than unknown arguments come back as they are.
 */
export function usageProblem(
  message: string,
  argv: readonly string[],
  commands: readonly string[],
): { command: string | undefined; problem: string } {
  const end = argv.indexOf('--');
  const words = end < 0 ? argv : argv.slice(0, end);
  const first = words.find((w) => !w.startsWith('-'));
  const command = first !== undefined && commands.includes(first) ? first : undefined;
  const m = UNKNOWN.exec(message);
  if (!m) return { command, problem: message };
  const unknown = new Set(m[1]!.split(', '));
  const options: string[] = [];
  const strays: string[] = [];
  for (const w of words) {
    if (w.startsWith('--')) {
      if (keysOf(w).some((k) => unknown.has(k))) options.push(w.split('=')[0]!);
    } else if (w.startsWith('-') && w.length > 1) {
      // A cluster of short options: each letter is its own option.
      for (const c of w.slice(1)) if (unknown.has(c)) options.push(`-${c}`);
    } else if (unknown.has(w)) strays.push(w);
  }
  const parts: string[] = [];
  const list = (xs: string[]): string => [...new Set(xs)].join(', ');
  if (options.length > 0)
    parts.push(`unknown option${options.length > 1 ? 's' : ''} ${list(options)}`);
  if (command === undefined && strays.length > 0 && strays[0] === first) {
    parts.push(`unknown command ${strays.shift()!}; the commands are ${commands.join(', ')}`);
  }
  if (strays.length > 0)
    parts.push(`unexpected argument${strays.length > 1 ? 's' : ''} ${list(strays)}`);
  return { command, problem: parts.length > 0 ? parts.join('; ') : message };
}
