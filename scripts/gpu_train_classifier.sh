#!/usr/bin/env bash
# Train the shapes classifier of configs/train/shapes/default.yaml (issue 15.2: clips at 8 fps,
# frame differences at the input) and score it on the real test clips, on one GPU. Only the
# benchmark and the classifier stage run; no Prefect, Ray or MLflow. From the repository root:
#
#   bash scripts/gpu_train_classifier.sh OUT [ARGS for `magicvideo train shapes`, e.g. --set stages.classifier.steps=4000]
#
# 1. renders the benchmark into OUT/data (`magicvideo train shapes OUT --stages data`);
# 2. trains the classifier (`--stages classifier`): OUT/classifier, OUT/runs/classifier/train_log.jsonl,
#    and OUT/report.json with its test accuracy;
# 3. prints per-attribute accuracy on the real test clips (read at the classifier's fps, as the
#    benchmark protocol reads the FVD reference clips), by the clips' native frame rate, and the
#    motion and speed confusion matrices; also in OUT/classifier_eval.json.
#
# VARIANTS="name:ARGS;name:ARGS" also trains each variant side by side with the recipe (the
# classifier is launch-bound: one process leaves the GPU mostly idle), in OUT/variants/NAME on
# hard links of OUT/data, e.g.
#   VARIANTS="wide:--set stages.classifier.classifier.width=0.5;long:--set stages.classifier.steps=6000"
# Logs: OUT/logs/<job>.log.
set -uo pipefail
out=${1:?usage: scripts/gpu_train_classifier.sh OUT [ARGS]}; shift
mkdir -p "$out/logs"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
train() { python3 -m magicvideo.cli train shapes "$@"; }
job() {  # job NAME DIR ARGS...: one `train shapes` command, its output in OUT/logs/NAME.log
    local name=$1; shift
    echo "[$(date +%T)] start $name"
    train "$@" --no-progress >"$out/logs/$name.log" 2>&1
    local rc=$?
    echo "[$(date +%T)] end $name (exit $rc): $(tail -n 1 "$out/logs/$name.log")"
    return $rc
}
report() {  # report DIR: accuracy of DIR/classifier on DIR/data's test clips
    python3 - "$1" <<'EOF'
import json, sys, time
from collections import Counter
from pathlib import Path

import torch

from magicvideo.models.classifier import ShapesI3D
from magicvideo.training.classifier import attribute_accuracy, chance_accuracy, read_test_clips

out = Path(sys.argv[1])
device = "cuda" if torch.cuda.is_available() else "cpu"
model = ShapesI3D.from_pretrained(out / "classifier").to(device).eval()
c = model.config
t0 = time.perf_counter()
videos, attrs = read_test_clips(out / "data", c.num_frames, c.sample_size, fps=c.fps)
ann = json.loads((out / "data" / "test_videodatainfo.json").read_text())["videos"]
rates = [v["params"]["fps"] for v in ann]
acc = attribute_accuracy(model, videos, attrs, batch=64)  # what `train shapes` reports
pred = {k: torch.cat([model.predict(v.to(device))[k].cpu() for v in videos.split(64)]) for k in model.heads}
chance = chance_accuracy(model.heads)
by_rate = {}
for r in sorted(set(rates)):
    idx = [i for i, x in enumerate(rates) if x == r]
    by_rate[f"{r:g} fps"] = {"clips": len(idx), **{k: round(sum(model.heads[k][int(pred[k][i])] == attrs[k][i] for i in idx) / len(idx), 3)
                                                   for k in model.heads}}
confusion = {}
for k in ("motion", "speed"):
    if k in model.heads:
        cnt = Counter((attrs[k][i], model.heads[k][int(pred[k][i])]) for i in range(len(videos)))
        confusion[k] = {t: {p: cnt[(t, p)] for p in model.heads[k]} for t in model.heads[k]}
result = {"classifier": str(out / "classifier"), "input": c.get("input", "rgb"), "fps": c.get("fps"), "width": c.width,
          "test_clips": len(videos), "accuracy": {k: round(v, 4) for k, v in acc.items()},
          "chance": {k: round(v, 4) for k, v in chance.items()}, "by_native_fps": by_rate, "confusion": confusion,
          "seconds": round(time.perf_counter() - t0, 1)}
(out / "classifier_eval.json").write_text(json.dumps(result, indent=2))
print(f"== {out}: input {result['input']}, fps {result['fps']}, width {c.width}, {len(videos)} test clips")
print("accuracy: " + ", ".join(f"{k} {v:.3f} (chance {chance[k]:.3f})" for k, v in acc.items()))
print("min over attributes: %.3f" % min(acc.values()))
for r, row in by_rate.items():
    print(f"  {r:>7} ({row['clips']} clips): " + ", ".join(f"{k} {row[k]:.2f}" for k in model.heads))
for k, m in confusion.items():
    print(f"{k} confusion (rows: truth, columns: predicted {', '.join(m)}):")
    for t, row in m.items():
        print(f"  {t:>16}: " + " ".join(f"{row[p]:4d}" for p in m))
EOF
}

job data "$out" --stages data "$@" || exit 1
pids=() names=()
job classifier "$out" --stages classifier "$@" & pids+=($!); names+=("$out")
IFS=';' read -r -a variants <<< "${VARIANTS:-}"
for v in "${variants[@]}"; do
    [ -n "$v" ] || continue
    name=${v%%:*}; args=${v#*:}
    dir="$out/variants/$name"
    mkdir -p "$dir"
    [ -e "$dir/data" ] || cp -al "$out/data" "$dir/data"
    # shellcheck disable=SC2086  # ARGS split on purpose
    job "classifier_$name" "$dir" --stages classifier "$@" $args & pids+=($!); names+=("$dir")
done
fail=0
for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then report "${names[$i]}" || fail=1; else fail=1; fi
done
exit $fail
