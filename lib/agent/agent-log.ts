/**
 * The agent's operator log: one line per event on stderr, prefixed
 * `mpm agent:`. Text that came from a peer goes through `printable` first,
 * so a hostile client cannot forge or split log lines.
 */
export type AgentLog = (message: string) => void;

export const logToStderr: AgentLog = (message) => {
  process.stderr.write(`mpm agent: ${message}\n`);
};

/** `text` with control characters escaped and its length capped, safe for one log line. */
export function printable(text: string, maxChars = 200): string {
  const escaped = text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
  return escaped.length > maxChars ? `${escaped.slice(0, maxChars)}…` : escaped;
}
