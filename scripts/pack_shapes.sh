#!/usr/bin/env bash
# Pack what a device call must bring back from a shapes training folder (scripts/gpu_train_shapes.sh)
# into DEST as pieces of at most 15 MiB (the device tool returns at most 8 files of 16 MiB each):
#
#   scripts/pack_shapes.sh upstream|keyframe OUT DEST
#
# upstream: the T2I folder (U-Net, VAE, text and image encoders), CLIP, classifier, the VideoVAE's
#           trained weights and every stage's done.json/config/log: enough for `--phase keyframe`
#           in a later call (extract into OUT, carry OUT beside the benchmark's data/).
# keyframe: the full model's pipeline, each ablation variant's U-Net, reports and logs.
#
#   scripts/pack_shapes.sh unpack DEST OUT
#
# unpack: extracts DEST's pieces into OUT, then completes each variant's pipeline with the base
#         pipeline's shared components (VideoVAE, text encoder, tokenizer, scheduler: upstream
#         stages every variant shares; only the U-Net is packed per variant).
set -euo pipefail
if [ "${1:-}" = unpack ]; then
    src=$2 out=$3
    mkdir -p "$out"
    for ph in upstream keyframe; do
        if ls "$src/$ph.tar."* >/dev/null 2>&1; then cat "$src/$ph.tar."* | tar xf - -C "$out"; echo "unpacked $ph"; fi
    done
    for v in "$out"/ablations/*/pipeline; do
        [ -d "$v" ] || continue
        for c in model_index.json scheduler tokenizer text_encoder vae; do
            [ -e "$v/$c" ] || cp -r "$out/pipeline/$c" "$v/"
        done
        echo "completed $v"
    done
    exit 0
fi
phase=$1 out=$2 dest=$3
mkdir -p "$dest"
cd "$out"
case $phase in
    upstream) want="t2i clip classifier recipe.yaml logs runs/*/done.json runs/*/config.yaml runs/*/train_log.jsonl
                    runs/videovae/final/vae_ema" ;;
    keyframe) want="pipeline report.json recipe.yaml logs runs/*/done.json runs/*/train_log.jsonl
                    ablations/*/pipeline/unet ablations/*/report.json ablations/*/runs/pretrain/done.json
                    ablations/*/runs/pretrain/train_log.jsonl ablations/*/runs/finetune/done.json
                    ablations/*/runs/finetune/train_log.jsonl ablations/train_reports.json" ;;
    *) echo "usage: $0 upstream|keyframe OUT DEST, or $0 unpack DEST OUT" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086 # the globs are meant to expand; a missing one is left out
files=$(ls -d $want 2>/dev/null || true)
[ -n "$files" ] || { echo "nothing to pack in $out" >&2; exit 1; }
tar cf - $files | split -b 15m - "$dest/$phase.tar."
ls -la "$dest"
