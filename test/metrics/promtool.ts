/**
 * Runs Debian's promtool (package `prometheus`). Where it is missing the tests that need it skip
 * with a line saying how to install it; under CI=true (set by .ci/run, as for the webgpu tests) or
 * DTRAIN_REQUIRE_PROMTOOL=1 that skip becomes a failure, so CI cannot go green without the real check.
 */
import {spawnSync} from 'node:child_process';

export const PROMTOOL_INSTALL = 'sudo apt-get install -y prometheus (Debian/Ubuntu package; provides /usr/bin/promtool)';

let found: boolean | undefined;

export function hasPromtool(): boolean {
  found ??= spawnSync('promtool', ['--version'], {encoding: 'utf8'}).status === 0;
  return found;
}

/** The `skip` option for node:test: false when promtool exists, else the reason (or a throw under DTRAIN_REQUIRE_PROMTOOL). */
export function skipWithoutPromtool(): false | string {
  if (hasPromtool()) return false;
  const why = `promtool not found on PATH — install it: ${PROMTOOL_INSTALL}`;
  if (process.env.DTRAIN_REQUIRE_PROMTOOL === '1' || process.env.CI === 'true') throw new Error(why);
  return why;
}

export interface PromtoolResult {
  status: number | null;
  /** stdout and stderr together (promtool prints lint findings on stderr). */
  output: string;
}

export function promtool(args: string[], input?: string): PromtoolResult {
  const r = spawnSync('promtool', args, {encoding: 'utf8', input, timeout: 60_000});
  if (r.error) throw r.error;
  return {status: r.status, output: `${r.stdout}${r.stderr}`};
}
