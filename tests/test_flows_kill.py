"""Issue 19.2: a `magicvideo eval` killed with SIGKILL leaves nothing running, and the next run marks
what it left RUNNING (MLflow runs FAILED, the Prefect flow run Crashed), with a note. One stopped by
SIGINT or SIGTERM stops everything it started and marks its runs KILLED (its flow run Crashed), naming
the signal. While it runs, every process it started listens on loopback only."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows import reaper
from tests.procnet import is_loopback, listening_sockets

MAGICVIDEO = str(Path(sys.executable).parent / "magicvideo")

_READ_FLOW_RUNS = """
import json, sys
from prefect.client.orchestration import get_client

with get_client(sync_client=True) as client:
    for flow_run_id in sys.argv[1:]:
        state = client.read_flow_run(flow_run_id).state
        print(json.dumps({"id": flow_run_id, "type": state.type.value, "message": state.message}))
"""


def _flow_run_states(env: dict, flow_run_ids: list[str]) -> dict[str, dict]:
    """The flow runs' states, read through Prefect's client from the runs' database (``PREFECT_HOME``'s,
    which the evals' temporary servers used), in a process of its own: Prefect's embedded server."""
    r = subprocess.run([sys.executable, "-c", _READ_FLOW_RUNS, *flow_run_ids], capture_output=True, text=True,
                       env={**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    states = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return {st["id"]: st for st in states}


def _session_or_cwd(sid: int, folder: Path) -> dict[int, str]:
    """Live processes in session `sid` or working in `folder` (zombies excluded): pid -> command."""
    out = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cwd = os.readlink(entry / "cwd")
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
        except OSError:
            continue
        if stat[0] != "Z" and (int(stat[3]) == sid or cwd == str(folder) or cwd.startswith(f"{folder}/")):
            out[int(entry.name)] = cmd
    return out


@pytest.fixture
def run_env(tmp_path):
    from magicvideo.build import build_pipeline
    from magicvideo.data import ShapesSpec, write_shapes

    build_pipeline("tiny", weights="random", seed=0).save_pretrained(tmp_path / "ckpt")
    write_shapes(tmp_path / "shapes", ShapesSpec(train=0, test=4, durations=[2.0], fps=[8.0]), workers=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "RAY_ADDRESS", "MLFLOW_TRACKING"))}
    env.update(MAGICVIDEO_STATE_DIR=str(tmp_path / "state"), PREFECT_HOME=str(tmp_path / "prefect_home"),
               OMP_NUM_THREADS="1")
    run = tmp_path / "run"
    run.mkdir()
    argv = [MAGICVIDEO, "eval", "shapes", "--checkpoint", str(tmp_path / "ckpt"), "--root", str(tmp_path / "shapes"),
            "--limit", "4", "--output-root", str(run / "out"), "--tracking-uri", f"sqlite:///{run}/mlflow.db",
            "--set", "metrics.fvd=null", "--set", "metrics.fid=null", "--set", "metrics.clipsim=null",
            "--set", "metrics.attributes=null", "--set", "ray.batch_size=1", "--set", "ray.num_actors=1"]
    return env, run, argv


def _start_and_wait_for_generation(env, run, argv, steps: int = 40):
    """A real eval in its own session, returned once its flow runs and its first sample is written;
    every process it started listens on loopback only. `steps`: denoising steps per clip, enough that
    the run is still generating when the caller signals it."""
    # SIGINT back to its default in the run: a shell's background job (`cmd &`, how CI may start
    # pytest) ignores SIGINT, children inherit that, and Python then never installs its Ctrl-C handler
    proc = subprocess.Popen([*argv, "--steps", str(steps)], cwd=run, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    records = Path(env["MAGICVIDEO_STATE_DIR"]) / "runs"
    out = Path(argv[argv.index("--output-root") + 1])
    deadline = time.monotonic() + 240
    info = None
    while time.monotonic() < deadline and proc.poll() is None:  # until the flow runs and generation started
        files = list(records.glob("*.json")) if records.is_dir() else []
        info = json.loads(files[0].read_text()) if files else None
        if info and info["flow_run_id"] and list(out.glob("samples/*/*.npy")):
            break
        time.sleep(0.5)
    assert proc.poll() is None and info and info["flow_run_id"], proc.stdout.read().decode()[-3000:]
    started = _session_or_cwd(proc.pid, run)
    assert len(started) >= 4, started  # the run, its reaper, Prefect's server, Ray's processes and actor
    sockets = listening_sockets(started)
    assert len(sockets) >= 8, sockets  # Prefect's server, GCS, raylet (2), agents, the driver's and actor's servers
    assert not [s for s in sockets if not is_loopback(s[2])], sockets
    return proc, info


def _none_left_within(sid: int, run: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (left := _session_or_cwd(sid, run)):
        time.sleep(1)
    assert not left, f"alive {seconds:.0f} s after the kill: {left}"


@pytest.mark.slow
def test_sigkill_leaves_no_process_and_the_rerun_marks_the_runs_failed(run_env):
    env, run, argv = run_env
    proc, info = _start_and_wait_for_generation(env, run, argv)
    records = Path(env["MAGICVIDEO_STATE_DIR"]) / "runs"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _none_left_within(proc.pid, run, 30)
    assert not reaper.marked_processes(info["run_id"])

    # the MLflow parent run was left RUNNING; the rerun (same output root) marks it FAILED and finishes
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run}/mlflow.db")
    exp = client.get_experiment_by_name("magicvideo-eval")
    (dead,) = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
    r = subprocess.run([*argv, "--steps", "40"], cwd=run, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "was killed" in r.stderr
    assert not client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'")
    assert "1 MLflow runs marked FAILED and 1 Prefect flow run Crashed" in r.stderr, r.stderr[-3000:]
    dead = client.get_run(dead.info.run_id)
    assert dead.info.status == "FAILED" and dead.data.tags["killed_pid"] == str(proc.pid)
    assert dead.data.tags["prefect_flow_run_id"] == info["flow_run_id"]
    assert "Marked FAILED by a later magicvideo eval" in dead.data.tags["mlflow.note.content"]
    assert not list(records.glob("*.json"))  # both records gone: the dead one settled, the rerun's own finished
    # the dead run's Prefect flow run, left RUNNING by the kill, is Crashed (a terminal, failed state), with the note
    state = _flow_run_states(env, [info["flow_run_id"]])[info["flow_run_id"]]
    assert state["type"] == "CRASHED" and "Marked FAILED by a later magicvideo eval" in state["message"], state
    assert f"PID {proc.pid}" in state["message"]


@pytest.mark.slow
def test_sigint_and_sigterm_stop_the_run_and_mark_its_runs_killed(run_env):
    """Ctrl-C in a terminal (SIGINT to the run's whole process group: its temporary Prefect server and
    Ray's processes get it too), then SIGTERM to the run's process alone (a scheduler's stop), each on
    a run of its own: the run exits with 128 + the signal, one line, nothing it started left, its MLflow
    runs KILLED and its Prefect flow run Crashed, each with a note naming the signal."""
    env, run, argv = run_env
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run}/mlflow.db")
    stopped = {}
    for sig, send in ((signal.SIGINT, os.killpg), (signal.SIGTERM, os.kill)):
        args = list(argv)
        args[args.index("--output-root") + 1] = str(run / f"out_{sig.name}")  # generation to interrupt
        # 400 steps a clip: the run is still generating when the signal comes
        proc, info = _start_and_wait_for_generation(env, run, args, steps=400)
        send(proc.pid, sig)
        rc = proc.wait(120)
        out = proc.stdout.read().decode()
        assert rc == 128 + sig, out[-4000:]
        assert f"magicvideo eval: interrupted ({sig.name})" in out and "Traceback" not in out, out[-3000:]
        _none_left_within(proc.pid, run, 30)
        exp = client.get_experiment_by_name("magicvideo-eval")
        runs = client.search_runs([exp.experiment_id], f"tags.prefect_flow_run_id = '{info['flow_run_id']}'")
        assert runs and {r.info.status for r in runs} == {"KILLED"}  # the run's own clean-up, no later run needed
        for r in runs:
            assert r.data.tags["stopped_by_signal"] == sig.name
            note = r.data.tags["mlflow.note.content"]
            assert note.startswith(f"Stopped by {sig.name}: magicvideo eval (PID {proc.pid}"), note
        assert not list((Path(env["MAGICVIDEO_STATE_DIR"]) / "runs").glob("*.json"))
        stopped[info["flow_run_id"]] = sig.name
    states = _flow_run_states(env, list(stopped))
    for flow_run_id, name in stopped.items():
        assert states[flow_run_id]["type"] == "CRASHED", states
        assert states[flow_run_id]["message"].startswith(f"Stopped by {name}: "), states


def test_stale_runs_skip_live_processes_and_reused_pids(tmp_path, monkeypatch):
    monkeypatch.setenv("MAGICVIDEO_STATE_DIR", str(tmp_path))
    runs = tmp_path / "runs"
    runs.mkdir()
    me = os.getppid()  # alive, not this process
    (runs / "live.json").write_text(json.dumps({"run_id": "live", "pid": me, "start_ticks": reaper.start_ticks(me)}))
    (runs / "reused.json").write_text(json.dumps({"run_id": "reused", "pid": me, "start_ticks": 1}))
    sleeper = subprocess.Popen(["sleep", "0"])
    sleeper.wait()
    (runs / "dead.json").write_text(json.dumps({"run_id": "dead", "pid": sleeper.pid, "start_ticks": None}))
    assert sorted(r["run_id"] for r in reaper.stale_runs()) == ["dead", "reused"]


def test_the_reaper_kills_the_marked_processes_when_its_run_dies(tmp_path, monkeypatch):
    """A stand-in run: marks its environment, starts the reaper and a child that ignores SIGTERM, and
    is killed with SIGKILL; the reaper then kills the child."""
    code = f"""
import os, signal, subprocess, sys, time
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
os.environ["MAGICVIDEO_STATE_DIR"] = {str(tmp_path)!r}
from flows.reaper import RunRecord
rec = RunRecord().start()
child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"])
print(rec.run_id, child.pid, rec.reaper.pid, flush=True)
time.sleep(300)
"""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    run_id, child, reaper_pid = proc.stdout.readline().split()
    # /proc/<pid>/environ can read empty for a moment after exec on a loaded (or sandboxed) kernel:
    # poll for the mark instead of reading it once (a single read failed once in CI)
    deadline = time.monotonic() + 10
    while reaper.marked_processes(run_id) != [int(child)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert reaper.marked_processes(run_id) == [int(child)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (reaper.alive(int(child), None) or reaper.alive(int(reaper_pid), None)):
        time.sleep(0.2)
    assert not reaper.alive(int(child), None) and not reaper.alive(int(reaper_pid), None)
    monkeypatch.setenv("MAGICVIDEO_STATE_DIR", str(tmp_path))
    (stale,) = reaper.stale_runs()  # its record stays for the next run to settle
    assert stale["run_id"] == run_id and stale["pid"] == proc.pid


def test_a_run_inside_a_longer_process_leaves_its_earlier_processes_alone(tmp_path, monkeypatch):
    """An eval called inside a process that already runs things (a test session's Ray and Prefect
    server): when the run ends, the reaper stops what the run started below the process, unmarked
    ones included, and nothing that was there before it, nor what those start during the run."""
    monkeypatch.setenv("MAGICVIDEO_STATE_DIR", str(tmp_path))
    env = {k: v for k, v in os.environ.items() if k != reaper.MARK}
    spawner = ("import subprocess, sys, time; time.sleep(2); p = subprocess.Popen(['sleep', '120']); "
               "print(p.pid, flush=True); time.sleep(120)")  # a raylet starting a worker later
    before = subprocess.Popen([sys.executable, "-c", spawner], env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    rec = reaper.RunRecord().start()
    try:
        later_child_of_before = int(before.stdout.readline())
        mine = subprocess.Popen(["sleep", "120"], env=env)  # unmarked, started by the run's process
        time.sleep(2.5)  # the reaper notes the tree every second
        assert reaper.alive(mine.pid, None)
    finally:
        rec.finish()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and reaper.alive(mine.pid, None):
        time.sleep(0.2)
    try:
        assert mine.wait(timeout=5) is not None  # started below the run, during the run: stopped
        assert before.poll() is None and reaper.alive(later_child_of_before, None)  # left alone
    finally:
        before.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(later_child_of_before, signal.SIGKILL)
