#!/usr/bin/env bash
# Type-check the package as installed. backends/ and adapters/ install as lowcarb.backends
# and lowcarb.adapters, a mapping mypy cannot follow in the source tree, so install a copy
# into a scratch directory and check that.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
"$python" -m pip install --quiet --no-deps --target "$scratch/site" "$repo" 2>&1 \
    | grep -v "^WARNING: Location" || true
cd "$scratch/site"
"$python" -m mypy --config-file "$repo/pyproject.toml" -p lowcarb
