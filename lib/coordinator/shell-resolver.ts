import { intendedShell, makeProcessFacts } from './intended-shell.js';

/**
 * The intended shell of each make process that sends us recipe lines,
 * cached by pid: read once per make from its makefile, not once per line.
 */
export class ShellResolver {
  private readonly cache = new Map<number, string>();
  private readonly warned = new Set<string>();

  constructor(
    /** Forced by the user (--mp-shell / MPMAKE_SHELL); wins over the makefile. */
    private readonly forced: string | undefined,
    private readonly warn: (line: string) => void,
  ) {}

  shellFor(makePid: number): string {
    if (this.forced) return this.forced;
    const cached = this.cache.get(makePid);
    if (cached) return cached;
    const facts = makeProcessFacts(makePid);
    let shell = '/bin/sh';
    if (facts) {
      const found = intendedShell(facts.cwd, facts.makefiles);
      shell = found.shell;
      if (found.unresolved && !this.warned.has(found.unresolved)) {
        this.warned.add(found.unresolved);
        this.warn(
          `mpmake: cannot evaluate "${found.unresolved}"; recipes there run with ${shell}. Set MPMAKE_SHELL or --mp-shell to choose.`,
        );
      }
    }
    this.cache.set(makePid, shell);
    return shell;
  }
}
