#!/usr/bin/env bash
# The JavaScript package's tests (js/, node --test). Skips (77) without node/npm; installs the
# locked dependencies with `npm ci` only when node_modules is missing or older than the lock.
set -euo pipefail
js="$1"
command -v node >/dev/null && command -v npm >/dev/null || { echo "js_verifier: node/npm not installed (scripts/bootstrap installs them)"; exit 77; }
cd "$js"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
exec node --test test/*.test.js
