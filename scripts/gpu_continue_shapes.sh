#!/usr/bin/env bash
# Continue training the committed shapes key-frame model (checkpoints/shapes/pipeline) on one GPU, several
# runs side by side, each with its own mixed noise prior (PYoCo's alpha, magicvideo.noise_prior) and budget,
# then score them all against the committed pipeline on the same prompts and sample seeds. The committed
# VideoVAE and text encoder stay as they are (so the committed interpolation, I2V and upsampler stages still
# fit a continued model), and the same data is used as in the chain.
#
#   SITE=/tmp/site RUNS="iid:0:1200 pyoco1:1:1200" scripts/gpu_continue_shapes.sh start OUT
#   scripts/gpu_continue_shapes.sh wait OUT SECONDS
#   scripts/gpu_continue_shapes.sh pack OUT DEST      # pipelines (tar), scores, logs
#
# RUNS: NAME:ALPHA:STEPS ... (each a `train shapes OUT/NAME --stages finetune` with stages.finetune.init_unet the
# committed pipeline, model.noise_prior ALPHA, stages.finetune.steps STEPS). Scoring (benchmarks/ablations_shapes.py
# with the committed evaluators, paired against the committed pipeline): the committed pipeline as it is and
# sampled with each alpha of $SAMPLE_ALPHAS (default "1"), and every run with its own alpha, in one process.
# INIT: the pipeline folder the runs continue (default: the committed one). SCALE / LIMIT / STEPS: a smoke test on a CPU (e.g. SCALE=0.005 LIMIT=4 STEPS=2).
set -uo pipefail
cmd=$1 out=$2; shift 2
. "$(dirname "$0")/gpu_job.sh"  # note, job, copy_repo, launch, wait_job
case $cmd in
start)
    copy_repo --exclude=./.devcarry
    [ -d "$out/data" ] || cp -r .devcarry/chain/data "$out/data"
    echo "${RUNS:-iid:0:1200 pyoco1:1:1200}" >"$out/runs.txt"
    launch gpu_continue_shapes.sh
    ;;
wait)
    wait_job "$1"
    ;;
pack)
    dest=$1
    mkdir -p "$dest"
    cd "$out"
    tar czf "$dest/results.tgz" status.log job.log logs scores*.json scores*.npz */runs/finetune/train_log.jsonl \
        */runs/finetune/done.json 2>/dev/null
    for d in */pipeline; do tar cf "$dest/$(dirname "$d").tar" "$d/unet" "$d/model_index.json"; done  # the rest is the committed pipeline's
    ls -la "$dest"
    ;;
run)
    cd "$out/repo"
    export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1 PYTHONPATH="${SITE:+$SITE:}$out/repo"
    committed="$out/repo/checkpoints/shapes/pipeline"
    init="${INIT:-$committed}"  # INIT: another saved pipeline to continue (same VideoVAE), e.g. an earlier committed one
    all() { local p rc=0; for p in "$@"; do wait "$p" || rc=1; done; return $rc; }
    score() { python3 benchmarks/ablations_shapes.py "$out" --classifier checkpoints/shapes/classifier \
                  --clip checkpoints/shapes/clip --limit "${LIMIT:-256}" --steps "${STEPS:-25}" --variants "" \
                  --baseline committed --pipeline "committed=$committed" "$@"; }
    pids=() names=()
    for spec in $(cat "$out/runs.txt"); do
        IFS=: read -r name alpha steps <<<"$spec"
        mkdir -p "$out/$name" && ln -sfn "$out/data" "$out/$name/data"
        job "$name" python3 -m magicvideo.cli train shapes "$out/$name" --stages finetune --no-progress \
            --steps-scale "${SCALE:-1}" --set "stages.finetune.init_unet=$init" --set "model.noise_prior=$alpha" \
            --set "stages.finetune.steps=$steps" & pids+=($!)
        names+=("$name")
    done
    all "${pids[@]}" || note "a run failed"
    specs=()
    for a in ${SAMPLE_ALPHAS:-1}; do specs+=(--pipeline "committed_a$a=$committed:noise_prior=$a"); done
    for name in "${names[@]}"; do
        [ -f "$out/$name/pipeline/model_index.json" ] && specs+=(--pipeline "$name=$out/$name/pipeline")
    done
    job score score "${specs[@]}" --json "$out/scores.json" --features "$out/scores.npz" || note "scoring failed"
    note "JOB END"
    ;;
*) echo "usage: $0 start|wait|pack|run OUT ..." >&2; exit 2 ;;
esac
