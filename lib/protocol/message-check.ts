/**
 * The runtime checks of the wire messages (messages.ts): every decoded
 * frame passes one before any code touches it. They are the schemas'
 * TypeBox checks, generated ahead of time (message-checks.generated.ts), so
 * checking needs no TypeBox; only explaining a malformed message loads the
 * schemas and TypeBox, then, to name the first thing wrong.
 */
import { createRequire } from 'node:module';
import type { AgentToClient, ClientToAgent } from './messages.js';
import { AGENT_TO_CLIENT_CHECKS, CLIENT_TO_AGENT_CHECKS } from './message-checks.generated.js';

type Direction = 'agentToClient' | 'clientToAgent';
type Check = (value: unknown) => boolean;

/**
 * One validator per direction: a table from `type` to the check of that
 * message's schema (one lookup and one generated function per frame).
 */
function messageChecker<T>(
  rows: [string[], Check][],
  direction: Direction,
): (v: unknown) => T | string {
  const checks = new Map<string, Check>();
  for (const [names, check] of rows) for (const name of names) checks.set(name, check);
  return (v: unknown): T | string => {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) {
      return 'message is not a map';
    }
    // Own property only: an inherited `type` (a prototype) is no message type.
    const type: unknown = Object.hasOwn(v, 'type') ? (v as { type: unknown }).type : undefined;
    if (typeof type !== 'string') return `unknown message type ${typeof type}`;
    const check = checks.get(type);
    if (!check) return `unknown message type ${JSON.stringify(type.slice(0, 40))}`;
    if (check(v)) return v as T;
    return `malformed ${type}${firstError(direction, type, v)}`;
  };
}

const load = createRequire(import.meta.url);

/**
 * ": <path> <what was expected>" for the first error, bounded and printable;
 * '' when it cannot be said. Loads the schemas and TypeBox (synchronously:
 * require of an ES module, Node 20.19 and later) the first time.
 */
function firstError(direction: Direction, type: string, v: unknown): string {
  try {
    const { messageSchemas } = load('./messages.js') as typeof import('./messages.js');
    const { TypeCompiler } = load(
      '@sinclair/typebox/compiler',
    ) as typeof import('@sinclair/typebox/compiler');
    const { typeNames } = load(
      './message-check-source.js',
    ) as typeof import('./message-check-source.js');
    const schema = messageSchemas[direction].find((s) => typeNames(s).includes(type));
    if (!schema) return '';
    const e = TypeCompiler.Compile(schema).Errors(v).First();
    if (!e) return '';
    const path = JSON.stringify(e.path.slice(0, 60));
    return `: ${path} ${e.message.slice(0, 80)}`;
  } catch {
    return '';
  }
}

/**
 * Validates a decoded value as a message the agent accepts. Returns an
 * explanation when it is not one, so a hostile or broken client gets an
 * error frame naming what was wrong instead of crashing the agent.
 */
export const checkClientMessage: (v: unknown) => ClientToAgent | string =
  messageChecker<ClientToAgent>(CLIENT_TO_AGENT_CHECKS, 'clientToAgent');

/** Validates a decoded value as a message the client accepts. */
export const checkAgentMessage: (v: unknown) => AgentToClient | string =
  messageChecker<AgentToClient>(AGENT_TO_CLIENT_CHECKS, 'agentToClient');
