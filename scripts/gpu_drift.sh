#!/usr/bin/env bash
# Drift runs of benchmarks/long_video.py side by side on one GPU, as one background job that outlives a single
# device call (issue 16.3). RUNS: ";"-separated "NAME ARGS..." entries, each run as phase drift_NAME with
# `--parts drift --data DATA --clips CLIPS --no-i2v ARGS...` (DATA default .devcarry/chain/data, CLIPS 128).
#
#   SITE=/tmp/site RUNS="cfg2_reuse --guidance 2 --window-noise reuse; student4 --pipeline checkpoints/shapes/student \
#       --steps 4 --guidance 1" scripts/gpu_drift.sh start OUT
#   scripts/gpu_drift.sh wait OUT SECONDS      # progress until the job ends or SECONDS pass
#   scripts/gpu_drift.sh pack OUT DEST         # drift.tgz: the JSONs and logs
set -uo pipefail
cmd=$1 out=$2; shift 2
. "$(dirname "$0")/gpu_job.sh"  # want, note, job, copy_repo, launch, drift_runs, wait_job
case $cmd in
start)
    copy_repo --exclude=./.devcarry/fid --exclude=./.devcarry/fidall --exclude=./.devcarry/sr_render
    launch gpu_drift.sh
    ;;
wait)
    wait_job "$1"
    ;;
pack)
    dest=$1
    mkdir -p "$dest"
    (cd "$out" && tar czf "$dest/drift.tgz" status.log job.log logs ./*.json 2>/dev/null)
    ls -la "$dest"
    ;;
run)
    cd "$out/repo"
    export PYTHONUNBUFFERED=1 PYTHONPATH="${SITE:+$SITE:}$out/repo"
    drift_runs
    note "JOB END"
    ;;
*) echo "usage: $0 start|wait|pack|run OUT ..." >&2; exit 2 ;;
esac
