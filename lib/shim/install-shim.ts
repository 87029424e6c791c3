/**
 * Puts the shim in mpmake's private run directory as an executable named
 * exactly `sh` (make treats SHELL by its file name: a line that is just `:`
 * is skipped and .ONESHELL prefixes are stripped only for sh-like names).
 *
 * The native shim (build/mpmake-shim, built from shim.c at install) is
 * linked there. Where it was not built, a tiny launcher starts Node directly
 * on the TypeScript fallback shim; the caller announces that once.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface InstalledShim {
  /** `<dir>/sh`: give make `SHELL=<shellPath>`. */
  shellPath: string;
  /** false: the slow TypeScript fallback shim is in use. */
  native: boolean;
}

/** The built native shim: <package root>/build/mpmake-shim. */
export function nativeShimPath(): string {
  // this file is <root>/dist/lib/shim/install-shim.js once compiled
  return fileURLToPath(new URL('../../../build/mpmake-shim', import.meta.url));
}

/** The compiled fallback shim, next to this module. */
export function fallbackShimPath(): string {
  return fileURLToPath(new URL('./fallback-shim.js', import.meta.url));
}

function isExecutableFile(p: string): boolean {
  try {
    if (!fs.statSync(p).isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The fallback launcher's text. Normally a script whose `#!` line is Node
 * itself and whose body, `import('<fallback-shim.js>')`, is valid both as
 * CommonJS and as an ES module, so it works with or without a package.json
 * above it. Where Node's path cannot go on a `#!` line (spaces, length), a
 * /bin/sh script execs Node instead.
 */
export function launcherScript(nodePath: string, entryPath: string): string {
  if (/^\/\S+$/.test(nodePath) && nodePath.length < 120) {
    return (
      `#!${nodePath}\n` +
      `// mpmake: fallback shim launcher (no native shim was built)\n` +
      `import(${JSON.stringify(pathToFileURL(entryPath).href)});\n`
    );
  }
  return (
    `#!/bin/sh\n` +
    `# mpmake: fallback shim launcher (no native shim was built)\n` +
    `exec ${shellQuote(nodePath)} ${shellQuote(entryPath)} "$@"\n`
  );
}

export interface InstallShimOptions {
  /** The native shim to link (tests); default nativeShimPath(). */
  nativeShim?: string;
}

/**
 * Creates `<dir>/sh` (replacing one left there): a symlink to the native
 * shim when it was built, else the fallback launcher. `dir` must exist, be
 * private to this mpmake, and have no spaces in its path.
 */
export function installShim(dir: string, options: InstallShimOptions = {}): InstalledShim {
  const shellPath = path.join(dir, 'sh');
  fs.rmSync(shellPath, { force: true });
  const native = options.nativeShim ?? nativeShimPath();
  if (isExecutableFile(native)) {
    fs.symlinkSync(native, shellPath);
    return { shellPath, native: true };
  }
  fs.writeFileSync(shellPath, launcherScript(process.execPath, fallbackShimPath()), {
    mode: 0o755,
  });
  fs.chmodSync(shellPath, 0o755); // the umask may have cut the mode
  return { shellPath, native: false };
}

/**
 * The built make interposer, <package root>/build/mpmake-preload.so, when
 * it was built and its path can go into LD_PRELOAD (no spaces or colons);
 * else undefined, and mpmake gives make the shim as SHELL instead.
 */
export function preloadPath(): string | undefined {
  const p = fileURLToPath(new URL('../../../build/mpmake-preload.so', import.meta.url));
  if (/[\s:]/.test(p)) return undefined;
  try {
    return fs.statSync(p).isFile() ? p : undefined;
  } catch {
    return undefined;
  }
}
