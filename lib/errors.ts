/**
 * Errors with stable codes. Every failure mpmake reports to a user carries a
 * `code` listed in README.md ("Error codes"), so scripts can match on it and
 * people can look up what to do.
 */
export class MpmakeError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MpmakeError';
    this.code = code;
  }
}

/** A command-line option, environment variable or config value is invalid. */
export class UsageError extends MpmakeError {
  constructor(message: string) {
    super('MPM_ERR_USAGE', message);
    this.name = 'UsageError';
  }
}

/** MPMAKE_HOSTS / --mp-hosts / the config file's host list cannot be parsed. */
export class HostListError extends MpmakeError {
  constructor(message: string) {
    super('MPM_ERR_HOSTS', message);
    this.name = 'HostListError';
  }
}

/** No agent could be used and fallback to local execution was refused. */
export class NoAgentsError extends MpmakeError {
  constructor(message: string) {
    super('MPM_ERR_NO_AGENTS', message);
    this.name = 'NoAgentsError';
  }
}

/** A peer broke the wire protocol (bad frame, bad message, wrong order). */
export class ProtocolError extends MpmakeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MPM_ERR_PROTOCOL', message, options);
    this.name = 'ProtocolError';
  }
}

/** A frame's length prefix is above the configured limit. */
export class FrameTooLargeError extends MpmakeError {
  constructor(
    readonly length: number,
    maxFrameBytes: number,
  ) {
    super(
      'MPM_ERR_FRAME_TOO_LARGE',
      `received frame of ${length} bytes, larger than the limit of ${maxFrameBytes}`,
    );
    this.name = 'FrameTooLargeError';
  }
}

/** Authentication with an agent failed (wrong or missing shared secret). */
export class AuthError extends MpmakeError {
  constructor(message: string) {
    super('MPM_ERR_AUTH', message);
    this.name = 'AuthError';
  }
}

/**
 * An agent could not prove that it holds the cluster's secret (mutual
 * authentication): it is not one of ours, or runs without a secret. Nothing
 * of the build is sent to it.
 */
export class AgentAuthError extends MpmakeError {
  constructor(message: string) {
    super('MPM_ERR_AGENT_AUTH', message);
    this.name = 'AgentAuthError';
  }
}

/** The TLS handshake with an agent failed: another secret, or TLS on one side only. */
export class TlsError extends MpmakeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MPM_ERR_TLS', message, options);
    this.name = 'TlsError';
  }
}

/** The connection to an agent was lost while jobs were running on it. */
export class AgentLostError extends MpmakeError {
  constructor(nodeId: string, options?: { cause?: unknown }) {
    super('MPM_ERR_AGENT_LOST', `lost the connection to agent ${nodeId}`, options);
    this.name = 'AgentLostError';
  }
}

/** The agent refused a job (cwd outside its roots, limits, bad request). */
export class JobRefusedError extends MpmakeError {
  constructor(message: string) {
    super('MPM_ERR_JOB_REFUSED', message);
    this.name = 'JobRefusedError';
  }
}

/** The native shim could not be built or found, and no fallback works. */
export class ShimError extends MpmakeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MPM_ERR_SHIM', message, options);
    this.name = 'ShimError';
  }
}

/** A file mpmake must write (--mp-report, --mp-trace) cannot be written; found before make starts. */
export class OutputPathError extends MpmakeError {
  constructor(message: string) {
    super('MPM_ERR_OUTPUT', message);
    this.name = 'OutputPathError';
  }
}

/** `mpm trace`: its trace file is missing, unreadable or not a trace. */
export class TraceFileError extends MpmakeError {
  constructor(message: string) {
    super('MPM_ERR_TRACE', message);
    this.name = 'TraceFileError';
  }
}

/**
 * What went wrong with a file, in words for the user instead of Node's
 * errno text (`ENOENT: no such file or directory, stat '…'`).
 */
export function fileProblem(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'does not exist';
    case 'ENOTDIR':
      return 'is not reachable: a part of its path is not a directory';
    case 'EACCES':
    case 'EPERM':
      return 'cannot be read: permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ELOOP':
      return 'is reachable only through a loop of symbolic links';
    default:
      return `cannot be read (${code ?? (err as Error).message})`;
  }
}

/**
 * Our own code threw while handling one peer's message (a bug): that
 * connection is dropped, and everything else keeps running.
 */
export class HandlerError extends MpmakeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MPM_ERR_INTERNAL', message, options);
    this.name = 'HandlerError';
  }
}
