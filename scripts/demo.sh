#!/usr/bin/env bash
# The main job on the embedded default: synthetic data in SQLite, the pipeline on kfp.local.
set -euo pipefail
cd "$(dirname "$0")/.."
export RECSYS_DATA_DIR="${RECSYS_DATA_DIR:-data}"

echo "== 1. generate a synthetic marketplace into sqlite:///${RECSYS_DATA_DIR}/source.db"
recsys data generate --users 2000 --items 1000 --days 30 --seed 42
echo
echo "== 2. run the offline pipeline locally (kfp.local): extract_load -> clean -> features -> quality_gate -> sync_store"
recsys pipeline run --local
echo
echo "== 3. run it again: nothing changed in the source, so nothing is extracted"
recsys pipeline run --local
echo
echo "== 4. what serving reads: the online store's versions"
recsys store status
echo "quality report: ${RECSYS_DATA_DIR}/quality/latest.html"
