import {Command, Errors, Flags} from '@oclif/core';

import {ExitCode, UserError} from './errors.js';

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

  protected override async catch(thrown: Error & {exitCode?: number; oclif?: {exit?: number}}): Promise<unknown> {
    if (thrown instanceof Errors.ExitError) return super.catch(thrown);
    // oclif's flag-parsing errors get the same one-line form (oclif spreads them over lines, with usage).
    const err: Error = thrown.oclif && !(thrown instanceof UserError) ? this.usageError(thrown, thrown.oclif.exit) : thrown;
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

  private usageError(parseError: Error, exitCode: number = ExitCode.usage): UserError {
    const command = `${this.config.bin} ${(this.id ?? '').replaceAll(':', ' ')}`.trim();
    const message = parseError.message.replace(/See more help with --help/, '').replace(/^The following error occurred:/, '').replace(/\s+/g, ' ').trim();
    return new UserError(message, {exitCode, suggestion: `see \`${command} --help\``});
  }
}
