#!/usr/bin/env bash
# Install, then chat with the shipped corpus at http://127.0.0.1:7860 (the first start ingests corpus/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python app.py "$@"
