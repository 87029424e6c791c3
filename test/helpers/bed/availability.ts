/**
 * Whether this machine can run the cluster test bed: root, network, mount
 * and PID namespaces, FUSE, sshfs and Debian's sshd. One line saying what
 * is missing, for the tests' skip message.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';

export const SSHD = '/usr/sbin/sshd';

function onPath(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

let cached: string | undefined | null = null;

/**
 * Undefined when the bed can run here; otherwise one line naming every
 * missing piece and how to get it (`make deps` as root installs the
 * Debian packages).
 */
export function bedMissing(): string | undefined {
  if (cached !== null) return cached;
  const missing: string[] = [];
  if (process.geteuid?.() !== 0) missing.push('root (network namespaces and FUSE mounts need it)');
  for (const [cmd, pkg] of [
    ['ip', 'iproute2'],
    ['unshare', 'util-linux'],
    ['nsenter', 'util-linux'],
    ['sshfs', 'sshfs'],
    ['fusermount3', 'fuse3'],
    ['ssh-keygen', 'openssh-client'],
  ] as const) {
    if (!onPath(cmd)) missing.push(`${cmd} (Debian package ${pkg})`);
  }
  if (!existsSync(SSHD)) missing.push(`${SSHD} (Debian package openssh-server)`);
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch {
    missing.push('/dev/fuse (the FUSE device)');
  }
  if (missing.length === 0) {
    const probe = spawnSync(
      'unshare',
      ['--net', '--mount', '--uts', '--pid', '--fork', '--mount-proc', 'true'],
      { encoding: 'utf8' },
    );
    if (probe.status !== 0) {
      missing.push(`namespaces (unshare --net --mount --pid failed: ${probe.stderr.trim()})`);
    }
  }
  const hint = missing.some((m) => m.includes('Debian package'))
    ? '; as root, `make deps` installs the packages'
    : '';
  cached = missing.length
    ? `cluster test bed skipped: missing ${missing.join(', ')}${hint}`
    : undefined;
  return cached;
}

/** libfaketime's preload library (Debian package libfaketime), if installed. */
export function faketimeLibrary(): string | undefined {
  const r = spawnSync('dpkg', ['-L', 'libfaketime'], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  return r.stdout.split('\n').find((p) => /\/libfaketime\.so\.1$/.test(p) && existsSync(p));
}
