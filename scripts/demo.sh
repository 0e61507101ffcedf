#!/usr/bin/env bash
# The main job on the embedded default: synthetic data in SQLite, the pipeline on kfp.local
# (SQLite online store, MLflow on a SQLite backend), recommendations from the champion, then
# the KServe predictor + transformer serving it on localhost (Ctrl-C stops them; without a
# terminal, e.g. in a script, they stop after showing a few users' answers).
set -euo pipefail
cd "$(dirname "$0")/.."
export RECSYS_DATA_DIR="${RECSYS_DATA_DIR:-data}"

echo "== 1. generate a synthetic marketplace into sqlite:///${RECSYS_DATA_DIR}/source.db"
recsys data generate --users 2000 --items 1000 --days 30 --seed 42
echo
echo "== 2. the offline pipeline on kfp.local: extract_load -> clean -> features -> quality_gate"
echo "       -> train -> evaluate -> register -> sync_store"
recsys pipeline run --local
echo
echo "== 3. the served chain beside popularity, ItemKNN and EASE on the same split (recsys evaluate)"
recsys evaluate
echo
echo "== 4. the model registry (MLflow) and the online store"
recsys model list
recsys store status
echo
echo "== 5. recommendations from the champion: a known user, then a user never seen before"
user=$(python - <<'PY'
import sqlite3, os
db = os.path.join(os.environ["RECSYS_DATA_DIR"], "source.db")
print(sqlite3.connect(db).execute(
    "select user_id from events where event_type='purchase' order by user_id limit 1").fetchone()[0])
PY
)
recsys recommend user "$user" --k 5
recsys recommend user "new-visitor" --k 5
echo
echo "evaluation: ${RECSYS_DATA_DIR}/evaluation/summary.json and report.html   quality report: ${RECSYS_DATA_DIR}/quality/latest.html"
echo "run it again (recsys pipeline run --local): nothing changed in the source, so 0 rows are extracted"
echo
echo "== 6. online: the KServe predictor (8082) and transformer (8080) on the champion, via HTTP"
once=()
if [ ! -t 0 ] || [ "${DEMO_SERVE_ONCE:-0}" = 1 ]; then once=(--once); fi
recsys serve --try-users "$user,u000002,new-visitor" --k 5 "${once[@]}"
