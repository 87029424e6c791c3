/**
 * Named debug tracers, switched on by MPMAKE_TRACE=channel,placement (or
 * `all`), in the manner of grpc-js's GRPC_TRACE. Output goes to stderr with
 * the process id, so traces of the coordinator, agents and shims interleave
 * readably.
 */
const enabled = new Set(
  (process.env['MPMAKE_TRACE'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
);

export type Tracer = (message: string) => void;

export function tracer(name: string): Tracer {
  if (!enabled.has(name) && !enabled.has('all')) return () => {};
  return (message) => {
    process.stderr.write(`mpmake[${process.pid}] ${name}: ${message}\n`);
  };
}
