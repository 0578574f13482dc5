#!/usr/bin/env bash
# The interpolation model retrained on the GPU at the recipe's full length (issue 13) beside the drift of 60 s
# clips read by the dihedral reader (issue 16.3), as one background job on one GPU that outlives a single
# device call. Phases, side by side:
#   interp        scripts/train_interpolation.py (the recipe's interpolation stage, residual over the latent
#                 blend, 800 x 64 windows) from the committed pipeline, written to OUT/interp/pipeline; then
#                 benchmarks/interpolation_quality.py on real clips (--steps 4 and 1, --fvd) and on generated
#                 key frames (--steps 4,1) for it and, in the same run, for the committed model
#                 (INTERP_PIPELINE=DIR: no training, DIR is the new pipeline; INTERP_STEPS, default "4 1")
#   drift_cfgG    benchmarks/long_video.py drift at CFG G (each of GUIDANCES, default "2 7.5"; G:W = CFG G in
#                 the first window, W in the later ones), CLIPS clips (default 128), held windows, both
#                 readers (d4 and plain)
#
#   SITE=/tmp/site scripts/gpu_interp_drift.sh start OUT   # copies the repo (with DATA, default .devcarry/chain/data) to OUT/repo, starts
#   scripts/gpu_interp_drift.sh wait OUT SECONDS           # progress until the job ends or SECONDS pass
#   scripts/gpu_interp_drift.sh pack OUT DEST              # interp_drift.tgz: interpolation/, the JSONs, logs
set -uo pipefail
cmd=$1 out=$2; shift 2
. "$(dirname "$0")/gpu_job.sh"  # want, note, job, copy_repo, launch, drift, wait_job
case $cmd in
start)
    copy_repo --exclude=./.devcarry/fid --exclude=./.devcarry/fidall --exclude=./.devcarry/sr_render
    launch gpu_interp_drift.sh
    ;;
wait)
    wait_job "$1"
    tail -n 1 "$out/interp/runs/interpolation/train_log.jsonl" 2>/dev/null
    ;;
pack)
    dest=$1
    mkdir -p "$dest"
    (cd "$out" && tar czf "$dest/interp_drift.tgz" status.log job.log logs ./*.json interp/pipeline/interpolation \
        interp/runs/interpolation/train_log.jsonl 2>/dev/null)
    ls -la "$dest"
    ;;
run)
    cd "$out/repo"
    export PYTHONUNBUFFERED=1 PYTHONPATH="${SITE:+$SITE:}$out/repo" OMP_NUM_THREADS=2
    data=${DATA:-.devcarry/chain/data}
    clips=${CLIPS:-128}
    pids=()
    if want interp; then
        (
            new=${INTERP_PIPELINE:-$out/interp/pipeline}
            if [ -z "${INTERP_PIPELINE:-}" ]; then
                job interp_train python3 scripts/train_interpolation.py "$out/interp" --data "$data" --residual || exit 1
            fi
            for name in new committed; do
                pipe=$new; [ $name = committed ] && pipe=checkpoints/shapes/pipeline
                for s in ${INTERP_STEPS:-4 1}; do
                    job "interp_real_${name}_${s}" python3 benchmarks/interpolation_quality.py --pipeline "$pipe" \
                        --clips 64 --steps $s --fps 24 --fvd --json "$out/interp_real_${name}_${s}step.json"
                done
                job "interp_gen_$name" python3 benchmarks/interpolation_quality.py --pipeline "$pipe" --clips 64 \
                    --steps 4,1 --fps 24 --generated --json "$out/interp_gen_$name.json"
            done
        ) & pids+=($!)
    fi
    for g in ${GUIDANCES:-2 7.5}; do
        first=${g%%:*} later=${g#*:}
        extra=(); [ "$g" != "$first" ] && extra=(--window-guidance "$later")
        want "drift_cfg$g" && { drift "cfg${g/:/_then_}" --guidance "$first" --no-i2v "${extra[@]}" & pids+=($!); }
    done
    wait "${pids[@]}"
    note "JOB END"
    ;;
*) echo "usage: $0 start|wait|pack|run OUT ..." >&2; exit 2 ;;
esac
