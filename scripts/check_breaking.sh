#!/usr/bin/env bash
# Fails when the current protos break any earlier published version of the contract.
# Each earlier commit that changed protos/ is built with buf (its google imports come from
# this checkout's third_party/, which scripts/gen_protos.py fills) and compared with HEAD.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=$(uv run --frozen which buf)
commits=$(git rev-list HEAD~1 -- protos 2>/dev/null || true)
if [ -z "$commits" ]; then
  echo "buf breaking: no earlier version of the contract to compare with"
  exit 0
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for commit in $commits; do
  mkdir -p "$scratch/$commit"
  git archive "$commit" protos buf.yaml | tar -x -C "$scratch/$commit"
  cp -r third_party "$scratch/$commit/third_party"
  # Compare only our module: third_party is a copy of the installed googleapis protos.
  "$buf" breaking protos --against "$scratch/$commit/protos"
  echo "buf breaking: compatible with $(git log -1 --format='%h %s' "$commit")"
done
