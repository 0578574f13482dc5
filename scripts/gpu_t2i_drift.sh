#!/usr/bin/env bash
# Magic 1-For-1 on shapes (issue 16), one background job on one GPU that outlives a single device call:
#   t2i     the text-to-image U-Net that makes magic141's first frame (scripts/train_i2v.py --steps 0
#           --t2i-steps T2I_STEPS, default 1200 x 256 frames: the recipe's t2i stage) for the committed
#           pipeline, written to OUT/t2i/pipeline (the committed pipeline + t2i_unet/);
#   drift   60 s clips through the sliding window (benchmarks/long_video.py drift, CLIPS clips, default 32):
#           text-to-video through the I2V model at overlap 1 and 4 and through the directed-attention
#           fallback, beside the T2I training; then magic141 (T2I first frame, then I2V) at overlap 1 and 4.
#
#   SITE=/tmp/site scripts/gpu_t2i_drift.sh start OUT   # copies the repo (with .devcarry/chain) to OUT/repo, starts
#   scripts/gpu_t2i_drift.sh wait OUT SECONDS           # progress until the job ends or SECONDS pass
#   scripts/gpu_t2i_drift.sh pack OUT DEST              # t2i_drift.tgz: t2i_unet/, the drift JSONs, logs
set -uo pipefail
cmd=$1 out=$2; shift 2
. "$(dirname "$0")/gpu_job.sh"  # want, note, job, copy_repo, launch, drift, wait_job
case $cmd in
start)
    copy_repo --exclude=./.devcarry/fid --exclude=./.devcarry/fidall --exclude=./.devcarry/sr_render
    launch gpu_t2i_drift.sh
    ;;
wait)
    wait_job "$1"
    ;;
pack)
    dest=$1
    mkdir -p "$dest"
    (cd "$out" && tar czf "$dest/t2i_drift.tgz" status.log job.log logs ./*.json t2i/pipeline/t2i_unet \
        t2i/runs/t2i/train_log.jsonl 2>/dev/null)
    ls -la "$dest"
    ;;
run)
    cd "$out/repo"
    export PYTHONUNBUFFERED=1 PYTHONPATH="${SITE:+$SITE:}$out/repo" OMP_NUM_THREADS=2
    data=.devcarry/chain/data
    clips=${CLIPS:-32}
    job t2i python3 scripts/train_i2v.py "$out/t2i" --pipeline checkpoints/shapes/pipeline --data "$data" --steps 0 \
        --t2i-steps "${T2I_STEPS:-1200}" --no-progress & a=$!
    drift t2v_o1 --overlap 1 & b=$!
    drift t2v_o4 --overlap 4 & c=$!
    drift fallback_o1 --overlap 1 --no-i2v & d=$!
    wait $a
    if [ -d "$out/t2i/pipeline/t2i_unet" ]; then
        drift magic141_o1 --pipeline "$out/t2i/pipeline" --mode magic141 --overlap 1 & e=$!
        drift magic141_o4 --pipeline "$out/t2i/pipeline" --mode magic141 --overlap 4 & f=$!
        wait $e $f
    fi
    wait $b $c $d
    note "JOB END"
    ;;
*) echo "usage: $0 start|wait|pack|run OUT ..." >&2; exit 2 ;;
esac
