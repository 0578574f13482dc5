"""Issue 19.6: two runs on one output root never generate the same clip twice (per-address claims
in flows.store)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flows.store import claim_path, claimed_batches, release, sample_path, try_claim, write_sample

REPO = Path(__file__).resolve().parents[1]
ADDRS = [f"{i:02x}" + "ab" * 31 for i in range(4)]

HOLDER = """
import sys, time
sys.path.insert(0, {repo!r})
import numpy as np
from flows.store import release, sample_path, try_claim, write_sample
root, address, then = sys.argv[1], sys.argv[2], sys.argv[3]
fd = try_claim(root, address)
print("held" if fd is not None else "busy", flush=True)
sys.stdin.readline()
if then == "write":
    write_sample(sample_path(root, address), np.full((2, 4, 4, 3), 7, np.uint8))
    release(root, address, fd)
# "die": exit without writing or releasing (the kernel drops the lock)
"""


def _holder(root, address, then):
    p = subprocess.Popen([sys.executable, "-c", HOLDER.format(repo=str(REPO)), str(root), address, then],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_claim_is_exclusive_and_released(tmp_path):
    fd = try_claim(tmp_path, ADDRS[0])
    assert fd is not None and claim_path(tmp_path, ADDRS[0]).is_file()
    holder = subprocess.run([sys.executable, "-c", HOLDER.format(repo=str(REPO)), str(tmp_path), ADDRS[0], "die"],
                            input="\n", capture_output=True, text=True, timeout=60)
    assert holder.stdout.strip() == "busy"  # another process cannot take it
    release(tmp_path, ADDRS[0], fd)
    assert not claim_path(tmp_path, ADDRS[0]).exists()
    fd = try_claim(tmp_path, ADDRS[0])
    assert fd is not None
    release(tmp_path, ADDRS[0], fd)


def test_a_sample_another_run_is_generating_is_waited_for_not_recomputed(tmp_path):
    write_sample(sample_path(tmp_path, ADDRS[3]), np.zeros((2, 4, 4, 3), np.uint8))  # already done
    other = _holder(tmp_path, ADDRS[0], "write")
    batches = claimed_batches(tmp_path, ADDRS, poll_s=0.05, wait_s=60)
    first = next(batches)
    assert first == ADDRS[1:3]  # ours; ADDRS[0] is the other run's, ADDRS[3] is on disk
    for a in first:
        write_sample(sample_path(tmp_path, a), np.ones((2, 4, 4, 3), np.uint8))
    other.stdin.write("\n")
    other.stdin.flush()
    assert list(batches) == []  # the other run wrote ADDRS[0]: nothing more for us
    assert other.wait(30) == 0
    assert read_value(tmp_path, ADDRS[0]) == 7 and not list(tmp_path.glob("samples/*/*.claim"))


def test_a_sample_whose_holder_died_is_taken_over(tmp_path):
    other = _holder(tmp_path, ADDRS[0], "die")
    batches = claimed_batches(tmp_path, ADDRS[:2], poll_s=0.05, wait_s=60)
    assert next(batches) == [ADDRS[1]]
    write_sample(sample_path(tmp_path, ADDRS[1]), np.ones((2, 4, 4, 3), np.uint8))
    other.stdin.write("\n")
    other.stdin.flush()
    other.wait(30)
    assert next(batches) == [ADDRS[0]]  # its holder died without writing it: ours now
    assert list(batches) == []


def test_a_claim_held_too_long_fails_naming_the_sample(tmp_path):
    other = _holder(tmp_path, ADDRS[0], "die")
    try:
        with pytest.raises(TimeoutError, match=rf"{ADDRS[0]}.*claimed by another run"):
            list(claimed_batches(tmp_path, ADDRS[:1], poll_s=0.05, wait_s=0.3))
    finally:
        other.stdin.write("\n")
        other.stdin.flush()
        other.wait(30)


def read_value(root, address) -> int:
    return int(np.load(sample_path(root, address))[0, 0, 0, 0])


WORKER = """
import json, sys
sys.path.insert(0, {repo!r})
import torch
torch.set_num_threads(1)
from flows.generation import GenerationWorker
from flows.store import plan_samples
from magicvideo.data.records import PromptRecord
ckpt, root = sys.argv[1], sys.argv[2]
records = [PromptRecord(prompt_id=f"p/{{i}}", prompt=f"a red circle number {{i}}", benchmark="p") for i in range(6)]
sampler = dict(scheduler="ddim", num_inference_steps=2, guidance_scale=1.0, fps=8.0, negative_prompt="", eta=0.0)
items = [it.as_dict() for it in plan_samples(records, "ckpt", sampler, 1, 0)]
w = GenerationWorker(device="cpu")
w.load(ckpt, "ddim")
print("loaded", flush=True)
sys.stdin.readline()
out = []
for i in range(0, len(items), 2):
    out += w.generate(ckpt, items[i : i + 2], sampler, root)
print(json.dumps([r["address"] for r in out if r["generated"]]), flush=True)
"""


@pytest.mark.slow
def test_two_concurrent_workers_generate_each_clip_once(tmp_path):
    from magicvideo.build import build_pipeline

    build_pipeline("tiny", weights="random", seed=0).save_pretrained(tmp_path / "ckpt")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER.format(repo=str(REPO)), str(tmp_path / "ckpt"),
                               str(tmp_path / "out")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "loaded"
    for p in procs:  # both start on the same samples at once
        p.stdin.write("\n")
        p.stdin.flush()
    generated = [json.loads(p.stdout.readline()) for p in procs]
    for p in procs:
        assert p.wait(120) == 0
    both = generated[0] + generated[1]
    assert len(both) == len(set(both)) == 6, generated  # every clip once, by one of the two
    assert len(list((tmp_path / "out").glob("samples/*/*.npy"))) == 6
    assert not list((tmp_path / "out").glob("samples/*/*.claim"))
