#!/usr/bin/env bash
# Distil the committed shapes key-frame model into a 4-step student (DMD2) on one GPU, then measure it, as one
# background job that outlives a single device call (each call is limited to 10 minutes; the job takes ~15).
#
#   SITE=/tmp/site scripts/gpu_student.sh start OUT   # copies the repo to OUT/repo, starts the job (setsid), returns
#   scripts/gpu_student.sh wait OUT SECONDS           # prints progress until the job ends or SECONDS pass
#   scripts/gpu_student.sh pack OUT DEST              # what a call brings back: the student, JSONs, logs
#
# Phases (each logs to OUT/logs/<phase>.log; OUT/status.log has one line per start/end):
#   train     scripts/train_student.py OUT (OUT/student, OUT/run): up to STEPS (2000) generator updates or
#             TRAIN_SECONDS (470) of training, whichever comes first; a checkpoint every 50 updates
#   speed     benchmarks/bench_student.py: sd15 size (random weights, bf16, batch 8) and the shapes models
#             (committed teacher vs OUT/student), teacher at 50 and 25 CFG steps vs the student at 4
#   quality   benchmarks/ablations_shapes.py on the 256 shapes test prompts: teacher at 25 and 50 steps (CFG 7.5),
#             student at 4, 2 and 1 steps (guidance 1), paired against the teacher at 25
#   compiled  bench_student.py --compile at sd15 size (torch.compile with CUDA graphs; slow to compile)
# PHASES="train quality ..." runs only those phases (scripts/gpu_pending.sh runs them in its own order).
# The benchmark's test clips: OUT/q/data, copied from .devcarry/chain/data when carried, else rendered.
set -uo pipefail
cmd=$1 out=$2; shift 2
. "$(dirname "$0")/gpu_job.sh"  # note, job, copy_repo, launch, wait_job
case $cmd in
start)
    copy_repo
    launch gpu_student.sh
    ;;
wait)
    wait_job "$1"
    tail -n 2 "$out/run/train_log.jsonl" 2>/dev/null
    ;;
pack)
    dest=$1
    mkdir -p "$dest"
    cd "$out"
    tar czf "$dest/student_results.tgz" status.log job.log logs run/train_log.jsonl student ./*.json 2>/dev/null
    ls -la "$dest"
    ;;
run)
    cd "$out/repo"
    export PYTHONUNBUFFERED=1 PYTHONPATH="${SITE:+$SITE:}$out/repo"
    if want train; then
        job train python3 scripts/train_student.py "$out" --teacher checkpoints/shapes/pipeline --steps "${STEPS:-2000}" \
            --max-seconds "${TRAIN_SECONDS:-470}" --checkpoint-every 50 --no-progress || { note "JOB END (failed: train)"; exit 1; }
    fi
    want speed_sd15 && job speed_sd15 python3 benchmarks/bench_student.py --batch 8 --json "$out/bench_student_sd15.json"
    want speed_shapes && job speed_shapes python3 benchmarks/bench_student.py --pipeline checkpoints/shapes/pipeline --student "$out/student" \
        --batch 8 --json "$out/bench_student_shapes.json"
    mkdir -p "$out/q"
    if [ ! -d "$out/q/data" ]; then
        if [ -d .devcarry/chain/data ]; then cp -r .devcarry/chain/data "$out/q/data"
        else python3 -m magicvideo.cli data shapes "$out/q/data" --workers 8 >"$out/logs/data.log" 2>&1; fi
    fi
    t=checkpoints/shapes/pipeline s=$out/student
    want quality && job quality python3 benchmarks/ablations_shapes.py "$out/q" --variants "" --classifier checkpoints/shapes/classifier \
        --clip checkpoints/shapes/clip --pipeline "teacher25=$t:steps=25" --pipeline "teacher50=$t:steps=50" \
        --pipeline "student4=$s:steps=4:guidance=1" --pipeline "student2=$s:steps=2:guidance=1" \
        --pipeline "student1=$s:steps=1:guidance=1" --baseline teacher25 --json "$out/student_quality.json"
    want compiled && job compiled timeout 900 python3 benchmarks/bench_student.py --batch 8 --compile --json "$out/bench_student_sd15_compiled.json"
    note "JOB END"
    ;;
*) echo "usage: $0 start|wait|pack|run OUT ..." >&2; exit 2 ;;
esac
