#!/usr/bin/env bash
# The GPU jobs left pending by sessions without device time (BENCHMARKS.md, "Pending on a GPU"), in one
# lease of one H200, as one background job that outlives a single device call:
# in the order B, C, then A and D (so that the models come back first if the lease runs out):
#   A. speed on an idle GPU, one after another: the x4 SR at the paper's scale (gpu_train_sr.sh speed),
#      the 4-step student against the 50/25-step teacher at sd15 size (gpu_student.sh speed_sd15), and the
#      sliding window's seconds per second of video at sd15 size (benchmarks/long_video.py speed);
#   B. training side by side (each model is small beside an H200): the shapes SR with and without
#      noise-conditioning augmentation (gpu_train_sr.sh train), the DMD2 student (gpu_student.sh train),
#      the I2V model and the T2I U-Net (scripts/train_i2v.py);
#   C. quality side by side: SR against bicubic (gpu_train_sr.sh quality, which waits for the FID
#      Inception's parts), the student against its teacher (gpu_student.sh quality), and drift of 60 s
#      clips through the I2V model (benchmarks/long_video.py drift, t2v and magic141);
#   D. the shapes student against its teacher, timed on an idle GPU (gpu_student.sh speed_shapes).
#
# Knobs (environment of `start`): I2V_STEPS (500), T2I_STEPS (600; 0: no T2I U-Net), SPEED=0 (no phase A/D),
# SR_TRAIN_ARGS (gpu_train_sr.sh), FID_PARTS (2).
#   SITE=/tmp/site scripts/gpu_pending.sh start OUT   # copies the repo (with .devcarry/chain and, rendered by
#                                                     # gpu_train_sr.sh's render phase here, .devcarry/sr_render), starts the job
#   scripts/gpu_pending.sh wait OUT SECONDS           # gathers the FID parts this call carries; progress
#   scripts/gpu_pending.sh pack OUT DEST              # sr.tgz, student.tgz, i2v.tgz: models, JSONs, logs
#
# The FID Inception (87 MB) travels in FID_PARTS (2) parts, one per call, in .devcarry/fid/.
set -uo pipefail
cmd=$1 out=$2; shift 2
. "$(dirname "$0")/gpu_job.sh"  # want, note, job, copy_repo, launch, wait_job
gather() { mkdir -p "$out/sr/fid"; cp -n .devcarry/fid/default_1.pt.part.* "$out/sr/fid/" 2>/dev/null; ls "$out/sr/fid" | tr '\n' ' '; echo; }
case $cmd in
start)
    copy_repo --exclude=./.devcarry/fid
    for j in sr st; do rm -rf "${out:?}/$j" && mkdir -p "$out/$j/logs" && cp -r "$out/repo" "$out/$j/repo"; done
    gather
    launch gpu_pending.sh
    ;;
wait)
    gather
    wait_job "$1"
    for j in sr st; do echo "== $j"; tail -n 3 "$out/$j/status.log" 2>/dev/null; done
    tail -n 1 "$out/st/run/train_log.jsonl" 2>/dev/null
    ;;
pack)
    dest=$1
    mkdir -p "$dest"
    (cd "$out/sr" && tar czf "$dest/sr.tgz" status.log logs ./*.json aug/upsampler noaug/upsampler \
        aug/runs/upsample/train_log.jsonl noaug/runs/upsample/train_log.jsonl 2>/dev/null)
    (cd "$out/st" && tar czf "$dest/student.tgz" status.log logs run/train_log.jsonl student ./*.json 2>/dev/null)
    (cd "$out" && tar czf "$dest/i2v.tgz" status.log job.log logs ./*.json i2v/pipeline/i2v i2v/pipeline/t2i_unet \
        i2v/pipeline/model_index.json i2v/runs/*/train_log.jsonl 2>/dev/null)  # not the runs' checkpoints (optimizer state: too large)
    ls -la "$dest"
    ;;
run)
    cd "$out/repo"
    export PYTHONUNBUFFERED=1 PYTHONPATH="${SITE:+$SITE:}$out/repo"
    sr() { PHASES="$1" FID_PARTS="${FID_PARTS:-2}" P1_TIMEOUT=150 bash "$out/sr/repo/scripts/gpu_train_sr.sh" run "$out/sr"; }
    st() { PHASES="$1" bash "$out/st/repo/scripts/gpu_student.sh" run "$out/st"; }
    data=.devcarry/chain/data
    # the 256 px benchmark the SR trains on, rendered ahead where the GPU machine cannot (no PyAV there)
    if [ -d .devcarry/sr_render/data_hr ]; then mkdir -p "$out/sr/render" && cp -rn .devcarry/sr_render/data_hr "$out/sr/render/"; fi
    # B. training
    job sr_train sr train & a=$!
    job st_train st train & b=$!
    job i2v_train python3 scripts/train_i2v.py "$out/i2v" --pipeline checkpoints/shapes/pipeline --data "$data" \
        --steps "${I2V_STEPS:-500}" --batch-size 64 --t2i-steps "${T2I_STEPS:-600}" --no-progress & c=$!
    wait $a $b $c
    # C. quality
    job sr_quality sr quality &
    job st_quality st quality &
    for mode in t2v magic141; do
        job "lv_drift_$mode" python3 benchmarks/long_video.py --parts drift --pipeline "$out/i2v/pipeline" --data "$data" \
            --clips 8 --mode "$mode" --json "$out/long_video_drift_$mode.json"
    done
    wait
    # A and D. speed, on an idle GPU, one after another (last: the models come first if the lease runs out);
    # SPEED=0 skips them (measured already: BENCHMARKS.md)
    [ "${SPEED:-1}" = 0 ] && { note "JOB END"; exit 0; }
    job st_speed_shapes st speed_shapes
    job st_speed st speed_sd15
    job lv_speed python3 benchmarks/long_video.py --parts speed --json "$out/long_video_speed.json"
    job sr_speed sr speed
    note "JOB END"
    ;;
*) echo "usage: $0 start|wait|pack|run OUT ..." >&2; exit 2 ;;
esac
