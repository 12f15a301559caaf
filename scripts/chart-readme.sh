#!/usr/bin/env bash
# Writes a chart's README.md from its README.md.gotmpl and values.yaml with helm-docs (the Values
# table comes from values.yaml's `# --` comments). `make generate` runs it after
# scripts/generate.py, which writes the settings into values.yaml; tests/deploy checks it current.
#   bash scripts/chart-readme.sh CHART_DIR
set -euo pipefail
chart=${1:?usage: chart-readme.sh CHART_DIR}
exec helm-docs --chart-search-root "$chart" --template-files README.md.gotmpl \
  --sort-values-order file --log-level warning
