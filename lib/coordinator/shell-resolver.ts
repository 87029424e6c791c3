import {
  intendedShell,
  makeProcessFacts,
  shellForTarget,
  type IntendedShell,
} from './intended-shell.js';

/**
 * The intended shell of each make process that sends us recipe lines,
 * cached by pid: read once per make from its makefile, not once per line.
 */
export class ShellResolver {
  private readonly cache = new Map<number, IntendedShell>();
  private readonly warned = new Set<string>();

  constructor(
    /** Forced by the user (--mp-shell / MPMAKE_SHELL); wins over the makefile. */
    private readonly forced: string | undefined,
    private readonly warn: (line: string) => void,
  ) {}

  /** The shell for a line of `target` in the make with pid `makePid`. */
  shellFor(makePid: number, target?: string): string {
    if (this.forced) return this.forced;
    const cached = this.cache.get(makePid);
    if (cached) return shellForTarget(cached, target);
    const facts = makeProcessFacts(makePid);
    let found: IntendedShell = { shell: '/bin/sh' };
    if (facts) {
      found = intendedShell(facts.cwd, facts.makefiles);
      if (found.unresolved && !this.warned.has(found.unresolved)) {
        this.warned.add(found.unresolved);
        this.warn(
          `mpmake: cannot evaluate "${found.unresolved}"; recipes there run with ${found.shell}. Set MPMAKE_SHELL or --mp-shell to choose.`,
        );
      }
    }
    this.cache.set(makePid, found);
    return shellForTarget(found, target);
  }
}
