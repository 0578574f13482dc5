#!/usr/bin/env bash
# The student's sd15 speed (issue 16, "at most 0.1 s per clip at batch 8"), eager and compiled, then optional
# drift runs, as one background job on one GPU (the speed phases run alone, so nothing shares the GPU
# with a timing). Phases (PHASES limits them): eager (bench_student.py, decode chunk CHUNK), compiled
# (--compile: U-Net and VideoVAE decode), compiled_unet (--compile --eager-decoder); the long-video speed
# (long_video.py --parts speed: 10 s of video, 4 steps) long_held, long_held_compiled, long_i2v_compiled; then
# the drift runs of RUNS (as in gpu_drift.sh, side by side) if RUNS is set.
#
#   SITE=/tmp/site CHUNK=128 RUNS="cfg75_reuse --window-noise reuse" scripts/gpu_speed.sh start OUT
#   scripts/gpu_speed.sh wait OUT SECONDS
#   scripts/gpu_speed.sh pack OUT DEST      # speed.tgz: the JSONs and logs
set -uo pipefail
cmd=$1 out=$2; shift 2
. "$(dirname "$0")/gpu_job.sh"  # want, note, job, copy_repo, launch, drift_runs, wait_job
case $cmd in
start)
    copy_repo --exclude=./.devcarry/fid --exclude=./.devcarry/fidall --exclude=./.devcarry/sr_render
    launch gpu_speed.sh
    ;;
wait)
    wait_job "$1"
    ;;
pack)
    dest=$1
    mkdir -p "$dest"
    (cd "$out" && tar czf "$dest/speed.tgz" status.log job.log logs ./*.json 2>/dev/null)
    ls -la "$dest"
    ;;
run)
    cd "$out/repo"
    export PYTHONUNBUFFERED=1 PYTHONPATH="${SITE:+$SITE:}$out/repo"
    chunk=${CHUNK:-128}
    bench() { local name=$1; shift
        job "$name" python3 benchmarks/bench_student.py --batch 8 --decode-chunk "$chunk" --json "$out/speed_$name.json" "$@"; }
    want eager && bench eager
    want compiled && bench compiled --compile
    want compiled_unet && bench compiled_unet --compile --eager-decoder --teacher-steps 25
    long() { local name=$1; shift
        job "$name" python3 benchmarks/long_video.py --parts speed --json "$out/speed_$name.json" "$@"; }
    want long_held && long long_held
    want long_held_compiled && long long_held_compiled --compile
    want long_i2v_compiled && long long_i2v_compiled --compile --window-method i2v
    [ -z "${RUNS:-}" ] || drift_runs
    note "JOB END"
    ;;
*) echo "usage: $0 start|wait|pack|run OUT ..." >&2; exit 2 ;;
esac
