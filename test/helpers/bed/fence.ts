/**
 * The bed's fence command (--mp-fence): what an admin's fence for sshfs
 * does. From the client, over ssh to the file server (the bed's client key
 * may log in there as root), it ends every sftp session of the lost node:
 * the sshd processes holding a connection from the node's address, found
 * with `ss -tnp` in the server's network namespace, are SIGKILLed, and it
 * waits until none is left. Whatever the node's sshfs still had queued then
 * meets a closed socket when the link returns, and is refused.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SshKeys } from './file-server.js';
import { sshClientOptions } from './file-server.js';

/** Writes the server-side script into `dir`; returns the command line for --mp-fence. */
export function fenceCommand(dir: string, keys: SshKeys, serverAddress: string): string {
  const script = join(dir, 'fence-sftp-sessions.sh');
  writeFileSync(
    script,
    [
      '#!/bin/bash',
      '# On the file server: end every sftp session of one node (its address in $1).',
      'ip=$1',
      '[ -n "$ip" ] || { echo "usage: $0 NODE-ADDRESS" >&2; exit 2; }',
      'for _ in $(seq 200); do',
      '  pids=$(ss -tnpH state all dst "$ip" | grep -o "pid=[0-9]*" | cut -d= -f2 | sort -u)',
      '  if [ -z "$pids" ]; then echo "no session of $ip left"; exit 0; fi',
      '  kill -9 $pids 2>/dev/null',
      '  sleep 0.05',
      'done',
      'echo "sessions of $ip still there: $pids" >&2',
      'exit 1',
      '',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  const ssh = sshClientOptions(keys)
    .map((o) => `-o ${o}`)
    .join(' ');
  return `ssh -F /dev/null ${ssh} -o ConnectTimeout=5 root@${serverAddress} ${script} "$MPMAKE_FENCE_HOST"`;
}
