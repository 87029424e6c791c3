import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { fileProblem, UsageError } from '../errors.js';

const TRAILING_SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** A shorter secret can be guessed offline from one recorded handshake. */
export const MIN_SECRET_BYTES = 16;
/** A secret file larger than this is not a secret file. */
export const MAX_SECRET_FILE_BYTES = 64 * 1024;

/**
 * Reads the cluster's shared secret. The file must be a regular file owned
 * by the user running the program (or root), that neither group nor others
 * can read or write: anyone who can read it can run any command on every
 * node, and its owner chooses the secret. It is opened once and checked and
 * read through that descriptor, so it cannot be swapped between the check
 * and the read. Trailing whitespace (the newline an editor or `echo`
 * leaves) is not part of the secret, which must then hold at least
 * MIN_SECRET_BYTES bytes. `optionName` says where the path came from (the
 * flag, environment variable or config key), for the error.
 */
export async function readSecretFile(path: string, optionName = '--secret-file'): Promise<Buffer> {
  const what = `${optionName}: the secret file ${path}`;
  let handle: FileHandle;
  try {
    // Non-blocking: a FIFO put in its place must not hang the program.
    handle = await open(path, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
  } catch (err) {
    throw new UsageError(
      `${what} ${fileProblem(err)}; give the file that holds the cluster's secret`,
    );
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) {
      throw new UsageError(
        `${what} is not a regular file; give the file that holds the cluster's secret`,
      );
    }
    const euid = process.geteuid?.() ?? info.uid;
    if (info.uid !== euid && info.uid !== 0) {
      throw new UsageError(
        `${what} is owned by uid ${info.uid}, not by this program's user (uid ${euid}) or root; ` +
          `its owner could choose the secret that lets anyone run commands on every node: ` +
          `use a file of your own (\`chown ${euid} ${path}\` as root)`,
      );
    }
    if ((info.mode & 0o077) !== 0) {
      const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
      throw new UsageError(
        `${what} is readable or writable by group or others (mode ${mode}); ` +
          `the secret lets its reader run any command on every node: run \`chmod 600 ${path}\``,
      );
    }
    if (info.size > MAX_SECRET_FILE_BYTES) {
      throw new UsageError(
        `${what} is ${info.size} bytes; a secret file holds at most ${MAX_SECRET_FILE_BYTES}`,
      );
    }
    let bytes: Buffer;
    try {
      bytes = await handle.readFile();
    } catch (err) {
      throw new UsageError(`${what} ${fileProblem(err)}`);
    }
    let end = bytes.length;
    while (end > 0 && TRAILING_SPACE.has(bytes[end - 1]!)) end--;
    if (end === 0) throw new UsageError(`${what} is empty; put the cluster's secret in it`);
    if (end < MIN_SECRET_BYTES) {
      throw new UsageError(
        `${what} holds a ${end}-byte secret; at least ${MIN_SECRET_BYTES} bytes are needed, as ` +
          `a short one can be guessed offline from one recorded handshake: make one with ` +
          `\`umask 077; head -c 32 /dev/urandom | base64 > ${path}\``,
      );
    }
    return bytes.subarray(0, end);
  } finally {
    await handle.close();
  }
}
