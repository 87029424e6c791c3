/**
 * Job leases: the timing both ends agree on (see lib/agent/lease.h and
 * README, "Faults"). A node's jobs for one client run only while that
 * client's heartbeats keep renewing their lease; a client re-runs a lost
 * job only once the lease has certainly lapsed.
 */

/**
 * The lease a client's heartbeats buy, from its heartbeat timeout: three
 * quarters of it, so that with a heartbeat every fifth of the timeout, three
 * in a row may come late before a job is killed for nothing.
 */
export function leaseMsFor(heartbeatTimeoutMs: number): number {
  return Math.max(100, Math.floor(heartbeatTimeoutMs * 0.75));
}

/**
 * What a client adds to the lease before it may run a lost job again: the
 * supervisor's check interval (50 ms) and its kill and clean-up, a heartbeat
 * in flight when the client gave up, and a clock that runs slower than ours
 * (0.1%, twice what NTP ever allows).
 */
export function leaseGraceMs(leaseMs: number): number {
  return 1000 + Math.ceil(leaseMs / 1000);
}
