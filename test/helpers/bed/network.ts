/**
 * The bed's network: a bridge in the switch host, and one veth pair per
 * host (`eth0` in the host, `v-NAME` on the bridge), addresses in
 * 198.18.0.0/24 (the benchmarking range), no default route: nothing leaves
 * the box. Links are cut and restored on the switch side.
 */
import { execa } from 'execa';
import type { Host } from './host.js';

export const BED_PREFIX = 24;

/** `ip ARGS` in the switch's network namespace only: PIDs in ARGS are ours. */
async function ipOnSwitch(sw: Host, args: string[]): Promise<void> {
  const r = await execa('nsenter', ['--target', String(sw.pid), '--net', 'ip', ...args], {
    reject: false,
  });
  if (r.exitCode !== 0) {
    throw new Error(`test bed: ip ${args.join(' ')} (switch) failed: ${String(r.stderr).trim()}`);
  }
}

export async function createBridge(sw: Host): Promise<void> {
  await ipOnSwitch(sw, ['link', 'add', 'br0', 'type', 'bridge']);
  await ipOnSwitch(sw, ['link', 'set', 'br0', 'up']);
}

function portName(host: Host): string {
  return `v-${host.name}`.slice(0, 15);
}

/** Joins `host` to the bridge with its address. */
export async function attach(sw: Host, host: Host): Promise<void> {
  const port = portName(host);
  await ipOnSwitch(sw, [
    'link',
    'add',
    port,
    'type',
    'veth',
    'peer',
    'name',
    'eth0',
    'netns',
    String(host.pid),
  ]);
  await ipOnSwitch(sw, ['link', 'set', port, 'master', 'br0']);
  await ipOnSwitch(sw, ['link', 'set', port, 'up']);
  await host.sh(
    `ip addr add ${host.address}/${BED_PREFIX} dev eth0 && ip link set eth0 up && ` +
      `sysctl -qw net.ipv6.conf.all.disable_ipv6=1`,
  );
}

/** `ip link set v-NAME down|up` on the switch: the host's link is cut or back. */
export function setLink(sw: Host, host: Host, up: boolean): Promise<void> {
  return ipOnSwitch(sw, ['link', 'set', portName(host), up ? 'up' : 'down']);
}
