#!/usr/bin/env bash
# GPU check for a machine with a real GPU and no internet (docs/gpu.md). Installs nothing from the
# network: it needs this checkout with node_modules and dist/ already in place (npm ci && npm run
# build, done elsewhere and copied), Node >= 20 and the GPU's Vulkan driver (plus libvulkan.so.1).
# Runs, in about 5 minutes at most:
#   dtrain doctor --json
#   dtrain model verify test/fixtures/shufflenetv2_0.5_reference.safetensors --backend webgpu --precision fast --json
#   the same with --precision exact (dtrain's double-float WGSL kernels: must pass on any GPU)
#   dtrain bench step --backend webgpu --size 0.5,1.5 --batch 32 --no-torch --json (the GPU alone: a CPU
#   PyTorch run would eat the time budget)
# and writes one JSON file: {"started", "host", "doctor", "verify", "bench", "exit": {...}, "logs": {...}}.
#
# usage: bench/gpu-check.sh RESULT.json
set -uo pipefail
out=${1:?usage: bench/gpu-check.sh RESULT.json}
cd "$(dirname "$0")/.."
root=$(pwd)
case $out in /*) ;; *) out="$OLDPWD/$out" ;; esac

if [[ ! -d node_modules/webgpu || ! -f dist/commands/doctor.js ]]; then
  echo "gpu-check: node_modules/ and dist/ must be present (run 'npm ci && npm run build' where there is a network, then copy the checkout)" >&2
  exit 2
fi
command -v node >/dev/null || { echo "gpu-check: node (>= 20) is not on PATH" >&2; exit 2; }

export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
limit=${GPU_CHECK_STEP_LIMIT_S:-80}

# Each step has its own time limit so that the whole script stays within ~5 minutes.
step() {
  local name=$1 secs=$2
  shift 2
  echo "gpu-check: $name ..." >&2
  local t0=$SECONDS
  timeout --kill-after=10 "$secs" node "$root/bin/run.js" "$@" >"$work/$name.json" 2>"$work/$name.log"
  local rc=$?
  echo "$rc" >"$work/$name.rc"
  echo "gpu-check: $name exit $rc in $((SECONDS - t0)) s" >&2
}

step doctor 60 doctor --json
step verify "$limit" model verify test/fixtures/shufflenetv2_0.5_reference.safetensors --backend webgpu --precision fast --json
step verifyExact "$limit" model verify test/fixtures/shufflenetv2_0.5_reference.safetensors --backend webgpu --precision exact --json
step bench "$limit" bench step --backend webgpu --size 0.5,1.5 --batch 32 --no-torch --json

# Assemble one JSON document with Node (no jq needed); a step whose stdout is not JSON is kept as text.
node --input-type=module - "$work" "$out" <<'EOF'
import {readFileSync, writeFileSync} from 'node:fs';
import {hostname} from 'node:os';
const [work, out] = process.argv.slice(2);
const read = (f) => { try { return readFileSync(`${work}/${f}`, 'utf8'); } catch { return ''; } };
const json = (name) => { const text = read(`${name}.json`); try { return JSON.parse(text); } catch { return {unparsed: text}; } };
const steps = ['doctor', 'verify', 'verifyExact', 'bench'];
const result = {
  started: new Date().toISOString(),
  host: hostname(),
  ...Object.fromEntries(steps.map((s) => [s, json(s)])),
  exit: Object.fromEntries(steps.map((s) => [s, Number(read(`${s}.rc`).trim() || -1)])),
  // stderr, last 4000 characters each (Dawn/Mesa warnings, progress).
  logs: Object.fromEntries(steps.map((s) => [s, read(`${s}.log`).slice(-4000)])),
};
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
const v = result.verify;
const b = result.bench?.results ?? [];
console.log(`gpu-check: wrote ${out}`);
console.log(`  auto backend: ${result.doctor?.auto?.backend}; webgpu: ${(result.doctor?.backends ?? []).find((x) => x.name === 'webgpu')?.device ?? 'unavailable'}`);
for (const [name, r] of [['verify', v], ['verifyExact', result.verifyExact]]) {
  if (r?.worst) console.log(`  ${name} (exit ${result.exit[name]}): forward ${r.worst.forward}, gradient ${r.worst.gradient}, update ${r.worst.update}`);
}
for (const r of b) console.log(`  bench size ${r.size}: ${r.imagesPerSec.toFixed(1)} images/s (${r.msPerStep.toFixed(0)} ms/step, batch ${r.batch})`);
EOF
# Exit status: 0 when doctor ran, the exact verify passed and the webgpu bench produced numbers; the
# fast verify's exit 3 (the second SGD step's float32 amplification, docs/fidelity.md) is reported in
# the JSON, not treated as a failure.
[[ $(cat "$work/doctor.rc") == 0 && $(cat "$work/verifyExact.rc") == 0 && $(cat "$work/bench.rc") == 0 ]]
