/**
 * Whether the webgpu tests can run here. Where no adapter exists they skip and say why, except
 * under CI=true or DTRAIN_REQUIRE_WEBGPU=1 (.ci/run sets it, after installing Mesa >= 24 lavapipe
 * from bookworm-backports), where they fail: CI must run them.
 */
import {probeWebGpu, WebGpuUnavailable} from '../../src/engine/webgpu.js';

export const probe = await probeWebGpu().then(
  (adapter) => ({adapter, error: undefined}),
  (error: Error) => ({adapter: undefined, error}),
);
const inCI = process.env.CI === 'true' || process.env.DTRAIN_REQUIRE_WEBGPU === '1';

/** The `skip` option of every webgpu test: false, or why it is skipped. */
export const skip: string | false =
  probe.error && !inCI ? `no WebGPU adapter here (${probe.error.message}); fix: ${probe.error instanceof WebGpuUnavailable ? probe.error.fix : 'see docs/gpu.md'}` : false;
if (skip) console.log(`# webgpu tests skipped: ${skip}`);
else if (probe.adapter) console.log(`# webgpu adapter: ${probe.adapter.name} (${probe.adapter.hardware ? 'hardware' : 'software'})`);

/** Under CI a missing adapter is a failure, not a skip. */
export function requireAdapter(): void {
  if (probe.error) throw new Error(`CI=true or DTRAIN_REQUIRE_WEBGPU=1, but no WebGPU adapter: ${probe.error.message} (.ci/run installs Mesa >= 24 lavapipe from bookworm-backports)`);
}
