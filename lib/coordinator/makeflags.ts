/**
 * MAKEFLAGS surgery. make encodes its flags as words separated by unescaped
 * spaces: an optional first word of single-letter flags without a dash, long
 * options, then ` -- ` and command-line variable definitions.
 */

function splitWords(flags: string): string[] {
  const words: string[] = [];
  let cur = '';
  for (let i = 0; i < flags.length; i++) {
    const c = flags[i]!;
    if (c === '\\' && i + 1 < flags.length) {
      cur += c + flags[++i];
    } else if (c === ' ' || c === '\t') {
      if (cur) words.push(cur);
      cur = '';
    } else cur += c;
  }
  if (cur) words.push(cur);
  return words;
}

const JOBSERVER_WORD = /^--(jobserver-auth|jobserver-fds|sync-mutex)=/;
const isJobsWord = (w: string): boolean => /^-j[0-9]*$/.test(w) || /^--jobs(=|$)/.test(w);

const SYNC_MUTEX_WORD = /^--sync-mutex=/;

/**
 * What a node's job sees: no `SHELL=` (it names the client's shim) or
 * `MPMAKE_TARGET=`, `MPMAKE_PREREQS=` (mpmake's own, from the fallback
 * without the interposer), no sync-mutex word (make 4.4 stops when it cannot
 * open that file, which exists only on the client). The jobserver word
 * stays, as make gives it to every job: a job's fds 3 and up are closed on
 * the node, as make closes them for a line it does not mark recursive, so
 * a make there says "jobserver unavailable" and runs serially, as it would
 * in such a line; a `fifo:PATH` is there only where the client's /tmp is.
 */
export function cleanMakeflagsForRemote(
  flags: string,
  /** Also drops the command-line definitions this names (held-back secrets), by name and value. */
  dropVariable?: (name: string, value: string) => boolean,
): string {
  const words = splitWords(flags);
  const dashdash = words.indexOf('--');
  const kept = words.filter((w, i) => {
    if (SYNC_MUTEX_WORD.test(w)) return false;
    if (dashdash >= 0 && i > dashdash && /^(SHELL|MPMAKE_TARGET|MPMAKE_PREREQS):?=/.test(w))
      return false;
    const isVar = dashdash >= 0 && i > dashdash;
    const def = isVar ? /^([^=:+?!]+?)(?::{1,3}|[+?!])?=/.exec(w) : null;
    if (def && dropVariable) {
      const unescape = (text: string): string => text.replace(/\\(.)/g, '$1');
      if (dropVariable(unescape(def[1]!), unescape(w.slice(def[0].length)))) return false;
    }
    return true;
  });
  // A `--` left with no variables after it is noise.
  if (kept[kept.length - 1] === '--') kept.pop();
  // make writes a leading blank when there is no word of single-letter flags.
  const lead = /^[ \t]/.test(flags) && kept.length > 0 ? ' ' : '';
  return lead + kept.join(' ');
}

/**
 * The MAKEFLAGS mpmake gives the make it starts: the user's own flags,
 * cleaned of parallelism and jobserver words, plus `-jN` (when N > 1) and
 * the pool's `--jobserver-auth=AUTH` (`R,W` or `fifo:PATH`). Never put -j on
 * make's argv instead: that resets jobserver mode. Without a pool (`auth`
 * undefined: a serial build) make must not see a jobserver at all: in
 * jobserver mode even one slot changes the order in which make visits
 * targets.
 */
export function composeMakeflags(
  userFlags: string | undefined,
  slots: number,
  auth: string | undefined,
): string {
  const words = splitWords(userFlags ?? '');
  const dashdash = words.indexOf('--');
  const flagWords = dashdash >= 0 ? words.slice(0, dashdash) : words;
  const varWords = dashdash >= 0 ? words.slice(dashdash) : [];
  const kept = flagWords
    .map((w, i) => {
      // A first word without a dash is a run of single-letter flags ("ks").
      if (i === 0 && !w.startsWith('-') && !w.includes('=')) return '-' + w.replace(/j[0-9]*/g, '');
      return w;
    })
    .filter((w) => w !== '-' && !JOBSERVER_WORD.test(w) && !isJobsWord(w));
  const ours = [
    ...(slots > 1 ? [`-j${slots}`] : []),
    ...(auth !== undefined ? [`--jobserver-auth=${auth}`] : []),
  ];
  return ' ' + [...kept, ...ours, ...varWords].join(' ');
}

/**
 * The -j that MAKEFLAGS (from the environment) asks for, as make reads it:
 * the last `-jN`, `-j` or `--jobs[=N]` among the flags (the first word may
 * be single letters without a dash: `kj4`); undefined when none.
 */
export function jobsInMakeflags(flags: string | undefined): 'all' | number | undefined {
  let found: 'all' | number | undefined;
  const words = splitWords(flags ?? '');
  for (const [i, w] of words.entries()) {
    if (w === '--') break;
    const single = i === 0 && !w.startsWith('-') && !w.includes('=') ? '-' + w : w;
    const m = /^--jobs(?:=(\d*))?$/.exec(w) ?? /^-[a-zA-Z]*j(\d*)$/.exec(single);
    if (!m) continue;
    const n = Number(m[1] || '0');
    found = n === 0 ? 'all' : n;
  }
  return found;
}

/** The last `--jobserver-auth=`/`--jobserver-fds=` value in MAKEFLAGS, if any. */
export function jobserverAuthOf(flags: string | undefined): string | undefined {
  let found: string | undefined;
  for (const w of splitWords(flags ?? '')) {
    const m = /^--jobserver-(?:auth|fds)=(.*)$/.exec(w);
    if (m) found = m[1];
  }
  return found;
}

/**
 * MAKEFLAGS with its jobserver words replaced by one `--jobserver-auth=AUTH`
 * (a parent's pool, renumbered to the fds make gets from us), the rest kept.
 */
export function rewriteJobserverAuth(flags: string, auth: string): string {
  const words = splitWords(flags);
  const dashdash = words.indexOf('--');
  const flagWords = (dashdash >= 0 ? words.slice(0, dashdash) : words).filter(
    (w) => !JOBSERVER_WORD.test(w),
  );
  const varWords = dashdash >= 0 ? words.slice(dashdash) : [];
  if (flagWords[0] !== undefined && !flagWords[0].startsWith('-') && !flagWords[0].includes('=')) {
    flagWords[0] = '-' + flagWords[0];
  }
  return ' ' + [...flagWords, `--jobserver-auth=${auth}`, ...varWords].join(' ');
}
