# Shared by the GPU job scripts (gpu_retrain_shapes.sh, gpu_train_sr.sh, gpu_student.sh): one background
# job that outlives a single device call (10 minutes each). Source it with `out` set to the job's folder.
# OUT/status.log has one line per phase start/end and a final "JOB END" line; OUT/logs/<phase>.log each
# phase's output; OUT/repo the copy of the working tree the job runs from, so that a later call that
# re-sends a changed tree does not change the code under a running phase.

want() {  # want PHASE: true unless $PHASES (space-separated phase names) is set and leaves PHASE out
    [ -z "${PHASES:-}" ] || [[ " $PHASES " == *" $1 "* ]]
}

note() { echo "[$(date +%T)] $*" >>"$out/status.log"; }

job() {  # job NAME ARGS...: run ARGS as phase NAME, its output in OUT/logs/NAME.log; returns its exit code
    local name=$1; shift
    note "start $name"
    "$@" >"$out/logs/$name.log" 2>&1
    local rc=$?
    note "end $name (exit $rc)"
    return $rc
}

copy_repo() {  # copy_repo [TAR OPTIONS...]: the working tree (less .git and .whl, and what is given) into OUT/repo
    mkdir -p "$out/logs"
    rm -rf "$out/repo" && mkdir -p "$out/repo"
    tar cf - --exclude=./.git --exclude=./.whl --exclude=./.venv "$@" . | tar xf - -C "$out/repo"
}

launch() {  # launch SCRIPT ARGS...: `bash OUT/repo/scripts/SCRIPT run OUT ARGS...`, detached (setsid), logged to OUT/job.log
    local script=$1; shift
    setsid nohup bash "$out/repo/scripts/$script" run "$out" "$@" >"$out/job.log" 2>&1 < /dev/null &
    echo "started (pid $!), log $out/job.log"
}

drift() {  # drift NAME ARGS...: benchmarks/long_video.py's drift as phase drift_NAME on $data, $clips clips (set by the caller), JSON in OUT/drift_NAME.json
    local name=$1; shift
    job "drift_$name" python3 benchmarks/long_video.py --parts drift --data "$data" --clips "$clips" \
        --json "$out/drift_$name.json" "$@"
}

drift_runs() {  # drift_runs: the ";"-separated "NAME ARGS..." entries of $RUNS as drift phases side by side (--no-i2v), on $DATA, $CLIPS clips
    export OMP_NUM_THREADS=2
    data=${DATA:-.devcarry/chain/data} clips=${CLIPS:-128}
    local pids=() r words
    IFS=';' read -ra runs <<<"${RUNS:?set RUNS}"
    for r in "${runs[@]}"; do
        read -ra words <<<"$r"
        [ ${#words[@]} -gt 0 ] || continue
        drift "${words[0]}" --no-i2v "${words[@]:1}" & pids+=($!)
    done
    wait "${pids[@]}"
}

wait_job() {  # wait_job SECONDS: until the JOB END line or SECONDS pass; then the status and each log's last lines
    local limit=$1 t0=$SECONDS
    [ -f "$out/status.log" ] || { echo "no job in $out (a fresh machine: the one that ran it was released)"; return 1; }
    while [ $((SECONDS - t0)) -lt "$limit" ]; do
        grep -q "JOB END" "$out/status.log" 2>/dev/null && break
        sleep 10
    done
    cat "$out/status.log"
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
    for f in "$out"/logs/*.log; do echo "--- $(basename "$f"): $(tail -c 400 "$f" | tr '\r' '\n' | tail -n 2)"; done
}
