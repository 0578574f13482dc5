#!/usr/bin/env bash
# Retrain the shapes generator chain and its ablation variants on one GPU, then score them, as one
# background job that outlives a single device call (each call is limited to 10 minutes; the job
# takes ~17). The committed shapes classifier and CLIP are the evaluators (not retrained).
#
#   SITE=/tmp/site scripts/gpu_retrain_shapes.sh start OUT [--seed K] [--upstream DIR]
#                                                       # copies the repo to OUT/repo, starts the job (setsid), returns;
#                                                       # SITE: a folder of extra packages (pip --target) for PYTHONPATH
#   scripts/gpu_retrain_shapes.sh wait OUT SECONDS      # prints progress until the job ends or SECONDS pass
#   scripts/gpu_retrain_shapes.sh pack OUT DEST         # what a call brings back: pipeline, reports, clips, upstream
#
# Phases (each logs to OUT/logs/<job>.log; OUT/status.log has one line per start/end):
#   upstream   image_vae | clip, then t2i | videovae (the classifier is the committed one)
#   keyframe   pretrain -> finetune of the full model and the four ablation variants, and of each
#              variant again at every seed of $SEEDS (`train ablation --replicate K`), all side by
#              side; $LONG_STEPS > 0 (or a number in OUT/long_steps when the phase starts) adds the full
#              model trained that many steps per stage (OUT/long)
#   score      the interpolation stage | benchmarks/ablations_shapes.py on every variant and on the
#              committed pipeline (committed evaluators), clips saved for the Kinetics I3D on a CPU;
#              each seed of $SEEDS (same prompts and sample seeds) and the long model beside it
# --upstream DIR: unpack DIR/upstream.tar.* (an earlier run's upstream models: t2i/, clip/, runs/*/final and
# done markers) into OUT first; the chain then reuses those stages. BASE=0 trains and scores only the
# seeds of $SEEDS (the rest of a multi-seed ablation split across device sessions:
# SEEDS=2 BASE=0 ... start OUT --upstream DIR).
# INTERP=0 skips the interpolation stage (not part of the ablation table; it shares the GPU with the scoring).
# Seeds 0, 1 and 2 in one device session (run 2026-12-03: upstream 4.0 min, 15 key-frame runs side by side
# with the recipe's encode_chunk 15.8 min, scoring 5.0 min: 24 min 50 s, 28 device minutes with the start):
#   SEEDS="1 2" INTERP=0 SITE=/tmp/site scripts/gpu_retrain_shapes.sh start OUT
# The key-frame stages train through CUDA graphs (the recipe's cuda_graphs); a file OUT/no_graphs,
# present when the keyframe phase starts, turns them off (e.g. if the GPU test of the capture failed).
# The job runs from its own copy of the repository, so a later device call that re-sends a changed
# working tree does not change the code under a running phase.
set -uo pipefail
cmd=$1 out=$2; shift 2
. "$(dirname "$0")/gpu_job.sh"  # note, job, copy_repo, launch, wait_job
case $cmd in
start)
    seed=0 upstream=
    while [ $# -gt 0 ]; do
        case $1 in --seed) seed=$2; shift 2 ;; --upstream) upstream=$2; shift 2 ;; *) echo "unknown option $1" >&2; exit 2 ;; esac
    done
    copy_repo --exclude=./.devcarry
    [ -d "$out/data" ] || cp -r .devcarry/chain/data "$out/data"   # the rendered benchmark (same as before)
    if [ -n "$upstream" ]; then  # an earlier session's upstream models (its OUT/upstream.tar.*): reused, not retrained
        cat "$upstream"/upstream.tar.* | tar xf - -C "$out" && echo "upstream models from $upstream"
    fi
    launch gpu_retrain_shapes.sh "$seed"
    ;;
wait)
    wait_job "$1"
    ;;
pack)
    dest=$1
    mkdir -p "$dest"
    cd "$out"
    tar czf "$dest/results.tgz" status.log job.log logs report*.json ablations*.json ablations*.png ablations*.npz \
        runs/*/done.json runs/*/train_log.jsonl ablations/*/runs/*/done.json ablations/*/runs/*/train_log.jsonl \
        ablations/seed*/*/runs/*/done.json ablations/seed*/*/runs/*/train_log.jsonl long/runs/*/done.json \
        long/runs/*/train_log.jsonl 2>/dev/null
    tar cf "$dest/pipeline.tar" pipeline
    tar czf "$dest/clips.tgz" clips 2>/dev/null
    tar cf - t2i runs/videovae/final/vae_ema runs/*/done.json recipe.yaml 2>/dev/null | split -b 15m - "$dest/upstream.tar."
    ls -la "$dest"
    ;;
run)
    seed=$1
    cd "$out/repo"
    export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1 PYTHONPATH="${SITE:+$SITE:}$out/repo"
    # SCALE / LIMIT / STEPS: a smoke test of this script on a CPU (e.g. SCALE=0.005 LIMIT=4 STEPS=2; each key-frame
    # run holds ~7 GB there at the recipe's batch, so five side by side need ~35 GB: more than a 24 GB machine)
    train() { python3 -m magicvideo.cli train "$@" --no-progress --steps-scale "${SCALE:-1}"; }
    score() { python3 benchmarks/ablations_shapes.py "$out" --classifier "$out/eval/classifier" --clip "$out/eval/clip" \
                  --seed "$seed" --limit "${LIMIT:-256}" --steps "${STEPS:-25}" "$@"; }
    all() { local p rc=0; for p in "$@"; do wait "$p" || rc=1; done; return $rc; }
    fail() { note "JOB END (failed: $1)"; exit 1; }
    mkdir -p "$out/eval" && cp -r checkpoints/shapes/classifier checkpoints/shapes/clip "$out/eval/"
    job image_vae train shapes "$out" --seed "$seed" --stages image_vae & a=$!
    job clip train shapes "$out" --seed "$seed" --stages clip & b=$!
    all $a $b || fail upstream
    job t2i train shapes "$out" --seed "$seed" --stages t2i & a=$!
    job videovae train shapes "$out" --seed "$seed" --stages videovae & b=$!
    all $a $b || fail upstream
    if [ -f "$out/no_graphs" ]; then
        sed -i 's/cuda_graphs: true/cuda_graphs: false/' configs/train/shapes/default.yaml && note "CUDA graphs off"
    fi
    long_steps=$(cat "$out/long_steps" 2>/dev/null || echo "${LONG_STEPS:-0}")  # decided as late as this
    pids=()
    if [ "${BASE:-1}" = 1 ]; then  # BASE=0: only the replicate seeds (the base variants were trained before)
        job full train shapes "$out" --seed "$seed" --stages pretrain,finetune & pids+=($!)
        for v in no_adaptor bidirectional no_temporal no_pretraining; do
            job "$v" train ablation "$out" "$v" --seed "$seed" & pids+=($!)
        done
    fi
    for k in ${SEEDS:-}; do
        for v in full no_adaptor bidirectional no_temporal no_pretraining; do
            job "${v}_seed$k" train ablation "$out" "$v" --seed "$seed" --replicate "$k" & pids+=($!)
        done
    done
    if [ "$long_steps" -gt 0 ]; then  # the full model at a longer budget, on the same upstream models
        mkdir -p "$out/long/runs"
        for rel in data t2i runs/image_vae runs/clip runs/t2i runs/videovae; do ln -sfn "$out/$rel" "$out/long/$rel"; done
        job long train shapes "$out/long" --seed "$seed" --stages pretrain,finetune \
            --set "stages.pretrain.steps=$long_steps" --set "stages.finetune.steps=$long_steps" & pids+=($!)
    fi
    all "${pids[@]}" || fail keyframe
    a=
    [ "${BASE:-1}" = 1 ] && [ "${INTERP:-1}" = 1 ] && { job interpolation train shapes "$out" --seed "$seed" --stages interpolation & a=$!; }
    spids=()
    for k in ${SEEDS:-}; do
        job "score_seed$k" score --replicate "$k" --json "$out/ablations_seed$k.json" & spids+=($!)
    done
    if [ "$long_steps" -gt 0 ]; then
        job score_long score --variants full --pipeline "long=$out/long/pipeline" --json "$out/ablations_long.json" \
            & spids+=($!)
    fi
    if [ "${BASE:-1}" = 1 ]; then
        job score score --pipeline committed=checkpoints/shapes/pipeline --save-clips "$out/clips" \
            --features "$out/ablations_features.npz" --json "$out/ablations.json" --plot "$out/ablations.png" \
            || note "score failed"
    fi
    if [ -n "${RESCALE:-}" ]; then
        job score_rescale score --variants full --guidance-rescale 0.7 --json "$out/ablations_rescale.json" \
            || note "score_rescale failed"
    fi
    all "${spids[@]}" || note "a seed's scoring failed"
    [ -z "$a" ] || wait $a || note "interpolation failed"
    note "JOB END"
    ;;
*) echo "usage: $0 start|wait|pack|run OUT ..." >&2; exit 2 ;;
esac
