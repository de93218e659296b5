#!/usr/bin/env bash
# Build sknet's documentation from a clean state, warnings as errors, then check that the
# gallery rendered every example's figures. Usage: bash docs/build.sh
# Environment: PYTHON (interpreter, default: python), SPHINXOPTS (extra sphinx options).
set -euo pipefail
DOCS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python}"
export MPLBACKEND=Agg
rm -rf "$DOCS/_build" "$DOCS/auto_examples" "$DOCS/gen_modules"
start=$(date +%s)
# shellcheck disable=SC2086
"$PYTHON" -m sphinx -W --keep-going -b html ${SPHINXOPTS:-} "$DOCS" "$DOCS/_build/html"
if [ -d "$DOCS/../examples" ]; then
    "$PYTHON" "$DOCS/check_gallery.py"
fi
echo "docs built in $(( $(date +%s) - start )) s: $DOCS/_build/html/index.html"
