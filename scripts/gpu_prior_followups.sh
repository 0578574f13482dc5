#!/usr/bin/env bash
# What the mixed-noise-prior key-frame model (2026-12-03) changes downstream, as one background job on one GPU
# that outlives a single device call (issues 15.3 and 16). Phases, side by side:
#   student   the DMD2 student re-distilled from the committed (new) teacher, then scored against it
#             (scripts/gpu_student.sh's train and quality phases: PHASES="train quality", in OUT/student_job)
#   drift_*   60 s clips through the sliding window (benchmarks/long_video.py drift, CLIPS clips, default 32):
#             the directed-attention windows (`held`, the default) at the model's own alpha, at alpha 0 (the
#             prior's share of any change) and at ALPHA_ALT (default 1.5); the I2V windows at the model's alpha
#   sweep     the sampling alpha chosen on a validation set that is not the test set: the shapes benchmark's
#             test split rendered at another generator seed (`magicvideo data shapes VAL --train 0 --test 256
#             --seed 7`, carried as .devcarry/val), the committed pipeline at each of SWEEP_ALPHAS
#             (benchmarks/ablations_shapes.py, paired against the model's own alpha)
#
#   SITE=/tmp/site scripts/gpu_prior_followups.sh start OUT   # copies the repo to OUT/repo, starts the job, returns
#   scripts/gpu_prior_followups.sh wait OUT SECONDS           # progress until the job ends or SECONDS pass
#   scripts/gpu_prior_followups.sh pack OUT DEST              # followups.tgz: the student, JSONs, logs
set -uo pipefail
cmd=$1 out=$2; shift 2
. "$(dirname "$0")/gpu_job.sh"  # want, note, job, copy_repo, launch, drift, wait_job
case $cmd in
start)
    copy_repo
    launch gpu_prior_followups.sh
    ;;
wait)
    wait_job "$1"
    [ -f "$out/student_job/status.log" ] && cat "$out/student_job/status.log"
    tail -n 1 "$out/student_job/run/train_log.jsonl" 2>/dev/null
    ;;
pack)
    dest=$1
    mkdir -p "$dest"
    (cd "$out" && tar czf "$dest/followups.tgz" status.log job.log logs ./*.json student_job/status.log student_job/logs \
        student_job/run/train_log.jsonl student_job/student student_job/*.json 2>/dev/null)
    ls -la "$dest"
    ;;
run)
    cd "$out/repo"
    export PYTHONUNBUFFERED=1 PYTHONPATH="${SITE:+$SITE:}$out/repo" OMP_NUM_THREADS=2
    data=.devcarry/chain/data
    clips=${CLIPS:-32}
    pids=()
    if want student; then
        mkdir -p "$out/student_job/logs"
        cp -r "$out/repo" "$out/student_job/repo"
        job student env PHASES="train quality" bash "$out/student_job/repo/scripts/gpu_student.sh" run "$out/student_job" & pids+=($!)
    fi
    if want drift; then
        drift held --no-i2v & pids+=($!)
        drift held_a0 --no-i2v --noise-prior 0 & pids+=($!)
        drift held_alt --no-i2v --noise-prior "${ALPHA_ALT:-1.5}" & pids+=($!)
        drift i2v --window-method i2v & pids+=($!)
    fi
    if want sweep && [ -d .devcarry/val ]; then
        mkdir -p "$out/val" && cp -r .devcarry/val "$out/val/data"
        specs=()
        for a in ${SWEEP_ALPHAS:-1 1.25 1.5 1.75 2}; do specs+=(--pipeline "a$a=checkpoints/shapes/pipeline:noise_prior=$a"); done
        job sweep python3 benchmarks/ablations_shapes.py "$out/val" --variants "" --classifier checkpoints/shapes/classifier \
            --clip checkpoints/shapes/clip "${specs[@]}" --baseline a1 --json "$out/sweep_val.json" & pids+=($!)
    fi
    wait "${pids[@]}"
    note "JOB END"
    ;;
*) echo "usage: $0 start|wait|pack|run OUT ..." >&2; exit 2 ;;
esac
