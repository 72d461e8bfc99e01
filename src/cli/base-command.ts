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
    if (err instanceof UserError) {
      return super.catch(new Errors.CLIError(err.message, {exit: err.exitCode, suggestions: err.suggestion ? [err.suggestion] : undefined}));
    }
    if (!(err instanceof Errors.CLIError) && !err.oclif && !this.verbose) {
      return super.catch(new Errors.CLIError(`${err.message} (run again with --verbose for details)`, {exit: 1}));
    }
    return super.catch(err);
  }
}
