"""Clean-up after a killed ``magicvideo eval`` (issue 19.2): its processes, and the runs it left RUNNING.

Every process a run starts (the temporary Prefect server, Ray's GCS, raylet, agents and workers)
inherits the environment variable ``MAGICVIDEO_RUN=<run id>``, set before anything starts. Two
things use that mark:

- **The reaper**, a small process (``python -m flows.reaper``, no Prefect, Ray or MLflow import)
  started beside the run, holding the read end of a pipe whose write end only the run's process
  holds. While the run lives it notes the run's process tree every second (the raylet starts its
  agents with an environment of their own, without the mark). When the run's process ends, however
  it ends (``kill -9`` included), the pipe closes; the reaper then sends SIGTERM to every process
  still carrying the mark or seen below the run, SIGKILL a few seconds later to those left (Ray's
  ``DashboardAgent`` and ``RuntimeEnvAgent`` outlive their raylet and ignore SIGTERM), and exits.
- **The run record**, ``<state dir>/runs/<run id>.json`` (state dir: ``$MAGICVIDEO_STATE_DIR``, else
  ``~/.cache/magicvideo``): the run's PID and its start time (so a reused PID is not mistaken for it),
  its MLflow tracking URI and experiment, and its Prefect flow run id once the flow is running. A
  run that ends removes its record. The next ``magicvideo eval`` finds the records of dead runs
  (:func:`stale_runs`), kills what is left of them and marks their MLflow runs FAILED and their
  Prefect flow run Crashed, with a note (:func:`settle`), so nothing stays RUNNING forever.

A run stopped by SIGINT or SIGTERM cleans up itself: it unwinds (the flow stops its actors and Ray,
the CLI its temporary server), then :func:`settle_interrupted` marks its unfinished MLflow runs KILLED
and its flow run Crashed, each noting the signal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

MARK = "MAGICVIDEO_RUN"


def state_dir() -> Path:
    return Path(os.environ.get("MAGICVIDEO_STATE_DIR") or Path.home() / ".cache" / "magicvideo")


def runs_dir() -> Path:
    return state_dir() / "runs"


# ------------------------------------------------------------------------------------- processes
def start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22), or None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def alive(pid: int, ticks: int | None) -> bool:
    """Whether the process ``pid`` that started at ``ticks`` still runs (a zombie does not)."""
    now = start_ticks(pid)
    if now is None or (ticks is not None and now != ticks):
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def marked_processes(run_id: str) -> list[int]:
    """PIDs of this user's processes whose environment carries ``MAGICVIDEO_RUN=run_id``."""
    needle = f"{MARK}={run_id}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in env.split(b"\0"):
            found.append(pid)
    return found


def descendants(root: int, skip: frozenset[int] | set[int] = frozenset()) -> dict[int, int | None]:
    """The processes below ``root`` (children, their children, ...): pid -> start ticks; not those
    in `skip`, nor anything below them."""
    children: dict[int, list[int]] = {}
    ticks = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        ticks[int(entry.name)] = int(fields[19])
    out, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid not in out and pid not in skip:
            out[pid] = ticks.get(pid)
            todo += children.get(pid, [])
    return out


def kill_marked(run_id: str, grace: float = 5.0, known: dict[int, int | None] | None = None) -> list[int]:
    """SIGTERM every process marked with ``run_id`` and every process of ``known`` (pid -> start
    ticks) still alive, SIGKILL those left after ``grace`` seconds; returns the PIDs signalled."""
    pids = {pid: start_ticks(pid) for pid in marked_processes(run_id)}
    pids.update({p: t for p, t in (known or {}).items() if p != os.getpid() and alive(p, t)})
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p, t) for p, t in pids.items()):
        time.sleep(0.2)
    for pid, t in {**pids, **{p: start_ticks(p) for p in marked_processes(run_id)}}.items():  # + any new
        if alive(pid, t):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    return sorted(pids)


# ------------------------------------------------------------------------------------ run records
class RunRecord:
    """This process's run: its mark in the environment, its record file, and its reaper."""

    def __init__(self, **info):
        self.run_id = uuid.uuid4().hex[:16]
        self.path = runs_dir() / f"{self.run_id}.json"
        self.info = {"run_id": self.run_id, "pid": os.getpid(), "start_ticks": start_ticks(os.getpid()),
                     "started": time.strftime("%Y-%m-%d %H:%M:%S"), "argv": sys.argv, "cwd": os.getcwd(),
                     "flow_run_id": None, **info}
        self.reaper: subprocess.Popen | None = None
        self._pipe_w: int | None = None

    def start(self) -> RunRecord:
        """Mark the environment, write the record, start the reaper."""
        os.environ[MARK] = self.run_id
        self.save()
        r, self._pipe_w = os.pipe()  # not inheritable: only this process holds the write end
        env = {k: v for k, v in os.environ.items() if k != MARK}
        self.reaper = subprocess.Popen([sys.executable, "-m", "flows.reaper", self.run_id, str(r), str(os.getpid())],
                                       pass_fds=(r,),
                                       env=env, cwd=str(Path(__file__).resolve().parents[1]),
                                       process_group=0,  # the terminal's Ctrl-C is for the run, not the reaper
                                       stdin=subprocess.DEVNULL)
        os.close(r)
        return self

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.info, indent=1))
        os.replace(tmp, self.path)

    def update(self, **info) -> None:
        self.info.update(info)
        self.save()

    def flow_hook(self, flow, flow_run, state) -> None:
        """A Prefect ``on_running`` hook: the flow run id into the record."""
        self.update(flow_run_id=str(flow_run.id))

    def finish(self) -> None:
        """The run ended (and cleaned up after itself): remove the record, and let the reaper stop
        anything of the run still running (it exits then)."""
        self.path.unlink(missing_ok=True)
        os.environ.pop(MARK, None)
        if self._pipe_w is not None:
            os.close(self._pipe_w)
            self._pipe_w = None


def stale_runs() -> list[dict]:
    """Records of runs whose process is gone (killed, or crashed before removing its record)."""
    out = []
    for f in sorted(runs_dir().glob("*.json")) if runs_dir().is_dir() else ():
        try:
            info = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if info.get("pid") != os.getpid() and not alive(info["pid"], info.get("start_ticks")):
            out.append({**info, "_file": str(f)})
    return out


def note(info: dict) -> str:
    return (f"Marked FAILED by a later magicvideo eval: the process that ran it (PID {info['pid']}, started "
            f"{info['started']}) ended without finishing it (killed?). Its log: {info.get('log') or 'none'}")


def interrupted_note(info: dict, signame: str) -> str:
    return (f"Stopped by {signame}: magicvideo eval (PID {info['pid']}, started {info['started']}) was interrupted "
            f"and then stopped its actors, Ray and its temporary Prefect server. Its log: {info.get('log') or 'none'}")


def _mark_mlflow(info: dict, condition: str, status: str, tags: dict[str, str]) -> list[str]:
    """Set `tags` and `status` on the run's MLflow runs (found by their Prefect flow run id tag) that
    match `condition` (an MLflow filter on ``attributes.status``)."""
    if not info.get("flow_run_id") or not info.get("tracking_uri"):
        return []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=info["tracking_uri"])
    exp = client.get_experiment_by_name(info.get("experiment") or "magicvideo-eval")
    if exp is None:
        return []
    runs = client.search_runs([exp.experiment_id], f"tags.prefect_flow_run_id = '{info['flow_run_id']}' "
                              f"and {condition}")
    for run in runs:
        for k, v in tags.items():
            client.set_tag(run.info.run_id, k, v)
        client.set_terminated(run.info.run_id, status)
    return [r.info.run_id for r in runs]


def settle_mlflow(info: dict) -> list[str]:
    """Mark the dead run's RUNNING MLflow runs FAILED, with a note."""
    return _mark_mlflow(info, "attributes.status = 'RUNNING'", "FAILED",
                        {"mlflow.note.content": note(info), "killed_pid": str(info["pid"])})


def _crash_flow_run(info: dict, message: str, only_unfinished: bool) -> bool:
    """Set the run's Prefect flow run Crashed with `message` on the API this process talks to (the
    temporary server keeps its runs in ``PREFECT_HOME``'s database); with `only_unfinished`, only if
    it is not in a final state yet."""
    if not info.get("flow_run_id"):
        return False
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(info["flow_run_id"])
        except Exception:  # noqa: BLE001 - another API (or database) than the dead run's
            return False
        if run.state is None or (only_unfinished and run.state.is_final()):
            return False
        client.set_flow_run_state(run.id, Crashed(message=message), force=True)
        return True


def settle_prefect(info: dict) -> bool:
    """Mark the dead run's Prefect flow run Crashed (a FAILED state), with a note, if it is still
    RUNNING or PENDING."""
    return _crash_flow_run(info, note(info), only_unfinished=True)


def settle_interrupted(info: dict, signum: int, log) -> None:
    """This run was stopped by SIGINT or SIGTERM (``magicvideo eval`` turns both into
    ``KeyboardInterrupt``) and unwound: its MLflow runs that did not finish (the flow ended the parent
    run FAILED; a checkpoint's run may still be RUNNING) are marked KILLED, and its Prefect flow run
    (which Prefect's engine set Crashed, "aborted by an interrupt signal") Crashed again with a note
    that names the signal. Called while the Prefect API is still up; never raises."""
    import signal as _signal

    name = _signal.Signals(signum).name
    text = interrupted_note(info, name)
    try:
        _mark_mlflow(info, "attributes.status != 'FINISHED'", "KILLED",
                     {"mlflow.note.content": text, "stopped_by_signal": name})
    except Exception as exc:  # noqa: BLE001 - the interrupt is what the user should see
        log.warning("could not mark this run's MLflow runs KILLED: %s", exc)
    try:
        _crash_flow_run(info, text, only_unfinished=False)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not note %s on this run's Prefect flow run: %s", name, exc)


def settle(info: dict, log) -> None:
    """Everything a dead run left: its processes, its RUNNING MLflow runs and Prefect flow run; then its record."""
    killed = kill_marked(info["run_id"], grace=3.0)
    done = []
    try:
        done = settle_mlflow(info)
    except Exception as exc:  # noqa: BLE001 - never fail this run for an old one
        log.warning("could not mark the MLflow runs of dead run %s: %s", info["run_id"], exc)
    try:
        flow = settle_prefect(info)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not mark the Prefect flow run of dead run %s: %s", info["run_id"], exc)
        flow = False
    log.warning("an earlier eval (PID %s, started %s) was killed: %d of its processes stopped, %d MLflow runs "
                "marked FAILED and %d Prefect flow run Crashed", info["pid"], info["started"], len(killed), len(done),
                int(flow))
    Path(info["_file"]).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------------- reaper
def _reap(run_id: str, fd: int, run_pid: int) -> None:
    """Wait for the run's end (EOF on the pipe), noting the run's process tree every second: a process
    that Ray started with its own environment (the raylet's agents) carries no mark, and is
    re-parented when its parent dies, but it was seen below the run while the run lived."""
    import select

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run's to handle; we act when it is gone
    # what ran below the run's process before the run started is not the run's (an eval called inside
    # a process that already has a Ray and a Prefect server, e.g. a test session): never note those,
    # nor what they start later
    before = set(descendants(run_pid))
    seen: dict[int, int | None] = {}
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready and not os.read(fd, 4096):
            break
        seen.update(descendants(run_pid, skip=before))
    os.close(fd)
    time.sleep(0.5)  # exit handlers of children (Ray's GCS, raylet) that were already stopping
    kill_marked(run_id, known=seen)


if __name__ == "__main__":
    _reap(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
