import {Command, Errors, Flags} from '@oclif/core';

import {UserError} from './errors.js';

/**
 * Base of every dtrain command: `--json` (oclif prints what run() returns), `--verbose`, and one
 * error policy: a UserError is one line plus its suggestion; anything else is one line too unless
 * --verbose or DEBUG asks for the stack.
 */
export abstract class DtrainCommand extends Command {
  static override enableJsonFlag = true;

  static override baseFlags = {
    verbose: Flags.boolean({description: 'Print stack traces and extra diagnostics on failure.', default: false, helpGroup: 'GLOBAL'}),
  };

  protected get verbose(): boolean {
    return this.argv.includes('--verbose') || Boolean(process.env.DEBUG);
  }

  /** Progress and diagnostics go to stderr so that stdout stays parseable (tables, --json). */
  protected progress(message: string): void {
    if (!this.jsonEnabled()) process.stderr.write(message + '\n');
  }

  protected override async catch(err: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    // oclif's own errors (flag parsing, this.exit) keep oclif's rendering and exit codes.
    if (err instanceof Errors.ExitError || (err.oclif && !(err instanceof UserError))) return super.catch(err);
    const user = err instanceof UserError;
    const exitCode = user ? err.exitCode : 1;
    const suggestion = user ? err.suggestion : undefined;
    const message = user || !this.verbose ? err.message + (user ? '' : ' (run again with --verbose for details)') : (err.stack ?? err.message);
    if (this.verbose && user && err.cause) process.stderr.write(`${String((err.cause as Error).stack ?? err.cause)}\n`);
    if (this.jsonEnabled()) this.logJson({error: {message: err.message, exitCode, suggestion}});
    // One line (never wrapped at 80 columns, unlike oclif's renderer) plus the suggestion.
    process.stderr.write(`Error: ${message}\n${suggestion ? `Try this: ${suggestion}\n` : ''}`);
    process.exitCode = exitCode;
    return undefined;
  }
}
