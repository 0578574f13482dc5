#!/usr/bin/env bash
# Train the committed shapes models (configs/train/shapes/default.yaml) and the four ablation
# variants on one GPU, running the stages that do not depend on each other side by side: the
# shapes models are small and launch-bound, so one process leaves most of the GPU idle. Every
# stage is seeded on its own, so each gets the weights the sequential `magicvideo train shapes OUT`
# would give it (up to GPU non-determinism); the run order only changes the wall-clock time.
#
#   scripts/gpu_train_shapes.sh [--phase upstream|keyframe|all] OUT [ARGS for every command, e.g. --steps-scale 0.03]
#
# upstream: data; image_vae | clip | classifier; then t2i | videovae.
# keyframe: pretrain -> finetune of the base chain and of each ablation variant
#           (magicvideo.training.ablations), five side by side; then a sequential pass (every stage
#           reused) writes OUT/report.json.
# all (default): both. Logs: OUT/logs/<job>.log. scripts/pack_shapes.sh packs what a device call
# must bring back after each phase.
set -uo pipefail
# the stages' CPU work is small (batches come from the in-memory cache): keep 5 concurrent
# processes from each starting a thread per core
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
phase=all
if [ "${1:-}" = --phase ]; then phase=$2; shift 2; fi
out=$1; shift
mkdir -p "$out/logs"
train() { python3 -m magicvideo.cli train "$@"; }
job() {  # job NAME ARGS...: one training command, its output in OUT/logs/NAME.log
    local name=$1; shift
    echo "[$(date +%T)] start $name"
    train "$@" --no-progress >"$out/logs/$name.log" 2>&1
    local rc=$?
    echo "[$(date +%T)] end $name (exit $rc): $(tail -n 1 "$out/logs/$name.log")"
    return $rc
}
fail=0
wait_all() { local p; for p in "$@"; do wait "$p" || fail=1; done; [ $fail = 0 ] || { echo "a job failed; see $out/logs"; exit 1; }; }

if [ $phase = upstream ] || [ $phase = all ]; then
    job data shapes "$out" --stages data "$@" || exit 1
    job image_vae shapes "$out" --stages image_vae "$@" & a=$!
    job clip shapes "$out" --stages clip "$@" & b=$!
    job classifier shapes "$out" --stages classifier "$@" & c=$!
    wait_all $a $b
    job t2i shapes "$out" --stages t2i "$@" & a=$!
    job videovae shapes "$out" --stages videovae "$@" & b=$!
    wait_all $a $b $c
fi
if [ $phase = keyframe ] || [ $phase = all ]; then
    pids=()
    job keyframe shapes "$out" --stages pretrain,finetune "$@" & pids+=($!)
    for v in no_adaptor bidirectional no_temporal no_pretraining; do
        job "$v" ablation "$out" "$v" "$@" & pids+=($!)
    done
    wait_all "${pids[@]}"
    job report shapes "$out" "$@" || exit 1
    cat "$out/logs/report.log"
fi
