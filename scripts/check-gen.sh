#!/usr/bin/env bash
# Fails when src/gen/ differs from what proto/ generates (CI: npm run gen:check).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx buf generate --template buf.gen.yaml -o "$tmp"
if ! diff -r "$tmp/src/gen" src/gen >/dev/null; then
  echo "src/gen is out of date with proto/: run npm run gen and commit the result" >&2
  diff -ru src/gen "$tmp/src/gen" | head -50 >&2 || true
  exit 1
fi
echo "src/gen matches proto/"
