/**
 * A failure the user can act on: printed as one line (what, why, what to do), never with a stack
 * trace unless --verbose or DEBUG is set. Modules throw it; commands let it reach DtrainCommand.catch.
 */
export class UserError extends Error {
  readonly exitCode: number;
  readonly suggestion?: string;

  constructor(message: string, options: {exitCode?: number; suggestion?: string; cause?: unknown} = {}) {
    super(message, {cause: options.cause});
    this.name = 'UserError';
    this.exitCode = options.exitCode ?? 1;
    this.suggestion = options.suggestion;
  }
}

/** Exit codes shared by every command, so scripts can tell failures apart. */
export const ExitCode = {
  failure: 1,
  usage: 2,
  verifyFailed: 3,
  network: 4,
  data: 5,
  /** The coordinator refused the cluster token (gRPC UNAUTHENTICATED). */
  auth: 6,
} as const;
