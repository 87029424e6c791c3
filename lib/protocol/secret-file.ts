import { readFile, stat } from 'node:fs/promises';
import { fileProblem, UsageError } from '../errors.js';

const TRAILING_SPACE = new Set([0x20, 0x09, 0x0a, 0x0d]);

/**
 * Reads the cluster's shared secret. The file must be a regular file that
 * neither group nor others can read or write: anyone who can read it can run
 * any command on every node. Trailing whitespace (the newline an editor or
 * `echo` leaves) is not part of the secret.
 */
export async function readSecretFile(path: string, optionName = '--secret-file'): Promise<Buffer> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw new UsageError(
      `${optionName}: the secret file ${path} ${fileProblem(err)}; give the file that holds the cluster's secret`,
    );
  }
  if (!info.isFile())
    throw new UsageError(
      `${optionName}: the secret file ${path} is not a regular file; give the file that holds the cluster's secret`,
    );
  if ((info.mode & 0o077) !== 0) {
    const mode = (info.mode & 0o777).toString(8).padStart(4, '0');
    throw new UsageError(
      `${optionName}: the secret file ${path} is readable or writable by group or others (mode ${mode}); ` +
        `the secret lets its reader run any command on every node: run \`chmod 600 ${path}\``,
    );
  }
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new UsageError(`${optionName}: the secret file ${path} ${fileProblem(err)}`);
  }
  let end = bytes.length;
  while (end > 0 && TRAILING_SPACE.has(bytes[end - 1]!)) end--;
  if (end === 0)
    throw new UsageError(
      `${optionName}: the secret file ${path} is empty; put the cluster's secret in it`,
    );
  return bytes.subarray(0, end);
}
