/**
 * Splits the arguments meant for GNU make into the parallelism the user
 * asked for and everything else, which goes to make unchanged. `-j` must not
 * reach make's argv: make would leave the jobserver mpmake made for it.
 */

/** undefined: no -j given; 'all': bare -j (the cluster's slots); N: at most N. */
export type JobsRequest = undefined | 'all' | number;

export interface MakeArgs {
  args: string[];
  jobs: JobsRequest;
}

// Short options of GNU make that take a required argument.
const SHORT_WITH_ARG = new Set(['C', 'f', 'I', 'o', 'W', 'E']);
// Long options that take a required argument (also as the next word).
const LONG_WITH_ARG = new Set([
  'directory',
  'file',
  'makefile',
  'include-dir',
  'old-file',
  'assume-old',
  'what-if',
  'new-file',
  'assume-new',
  'eval',
  'jobserver-style',
]);

const isCount = (s: string | undefined): s is string => s !== undefined && /^[0-9]+$/.test(s);

function jobsValue(text: string | undefined): JobsRequest {
  if (text === undefined || text === '') return 'all';
  const n = Number(text);
  return n === 0 ? 'all' : n; // make treats -j0 as "no limit" too
}

export function splitMakeArgs(argv: readonly string[]): MakeArgs {
  const args: string[] = [];
  let jobs: JobsRequest;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      args.push(...argv.slice(i));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      if (name === 'jobs') {
        if (eq >= 0) jobs = jobsValue(a.slice(eq + 1));
        else if (isCount(argv[i + 1])) jobs = jobsValue(argv[++i]);
        else jobs = 'all';
        continue;
      }
      args.push(a);
      if (eq < 0 && LONG_WITH_ARG.has(name) && i + 1 < argv.length) args.push(argv[++i]!);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      let kept = '-';
      for (let k = 1; k < a.length; k++) {
        const c = a[k]!;
        if (c === 'j') {
          let digits = '';
          while (k + 1 < a.length && /[0-9]/.test(a[k + 1]!)) digits += a[++k];
          if (digits === '' && k === a.length - 1 && isCount(argv[i + 1])) {
            digits = argv[++i]!;
          }
          jobs = jobsValue(digits);
          continue;
        }
        kept += c;
        if (SHORT_WITH_ARG.has(c) || c === 'O' || c === 'l') {
          // The rest of the word is this option's argument.
          kept += a.slice(k + 1);
          if (SHORT_WITH_ARG.has(c) && k === a.length - 1 && i + 1 < argv.length) {
            if (kept !== '-') args.push(kept);
            args.push(argv[++i]!);
            kept = '-';
          }
          break;
        }
      }
      if (kept !== '-') args.push(kept);
      continue;
    }
    args.push(a);
  }
  return { args, jobs };
}

/**
 * Whether make is asked only to say what it would do (`-n`, `--just-print`,
 * `--dry-run`, `--recon`) or whether the goals are up to date (`-q`,
 * `--question`): no summary line then, and no history kept.
 */
export function isDryRun(args: readonly string[]): boolean {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return false;
    if (a.startsWith('--')) {
      const name = a.slice(2).split('=')[0]!;
      if (['just-print', 'dry-run', 'recon', 'question'].includes(name)) return true;
      if (!a.includes('=') && LONG_WITH_ARG.has(name)) i++;
      continue;
    }
    if (!a.startsWith('-') || a.length < 2) continue;
    for (let k = 1; k < a.length; k++) {
      const c = a[k]!;
      if (c === 'n' || c === 'q') return true;
      if (SHORT_WITH_ARG.has(c) || c === 'O' || c === 'l') {
        if (SHORT_WITH_ARG.has(c) && k === a.length - 1) i++;
        break;
      }
    }
  }
  return false;
}
