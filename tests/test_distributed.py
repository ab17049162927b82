"""Data-parallel training under torchrun: two CPU processes (gloo, loopback) take the steps one process
takes on the same global batch, rank 0 alone writes, and a mismatched setup is refused."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from minildm.distributed import World, check_divides

#: two processes sum their gradients in another order than one process: the weights after a few
#: steps agree to float32 rounding (6e-8 seen), far below what the steps changed (> 1e-4)
TOLERANCE = 1e-6
TRAIN = ["-m", "minildm", "train", "text2img", "--budget", "quick", "--steps", "4", "--data-size", "200"]


def _run(args: list[str], cwd, nproc: int = 1) -> subprocess.CompletedProcess:
    """``python -m minildm train ...``, or under ``torchrun --standalone --nproc_per_node=N``."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MINILDM_PROGRESS="0", MINILDM_DEVICE="cpu")
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    launcher = launcher if nproc > 1 else []
    argv = [sys.executable, *launcher, *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.symlink(os.path.join(root, "data"), tmp / "data")  # the shipped VAE, CLIP and tokenizer
    one = _run([*TRAIN, "--batch-size", "8", "--run-dir", "one", "--out", "one_out"], tmp)
    two = _run([*TRAIN, "--batch-size", "8", "--run-dir", "two", "--out", "two_out"], tmp, nproc=2)
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    return tmp, one, two


@pytest.mark.slow  # torchrun child processes that train
def test_two_processes_take_the_steps_of_one(runs):
    tmp, one, two = runs
    for name in ("one_out/model.safetensors", "one/training_state.safetensors"):
        a, b = load_file(tmp / name), load_file(tmp / name.replace("one", "two"))
        assert a.keys() == b.keys()
        worst = max((a[k] - b[k]).abs().max().item() for k in a)
        assert worst < TOLERANCE, f"{name}: 2 processes differ from 1 by {worst:.2e} (> {TOLERANCE:g})"
    a = load_file(tmp / "one_out" / "model.safetensors")  # the EMA weights
    from minildm.nn import UNetModel
    from minildm.tasks import TEXT2IMG_UNET

    torch.manual_seed(0)  # the task's initial weights: training moved them far more than the tolerance
    start = UNetModel(TEXT2IMG_UNET).state_dict()
    assert max((a[k] - start[k]).abs().max().item() for k in a) > 100 * TOLERANCE
    assert json.loads((tmp / "two_out" / "config.json").read_text())["world_size"] == 2
    assert "2 processes" in two.stdout and two.stdout.count("training text2img") == 1  # rank 0 prints


@pytest.mark.slow  # torchrun child processes that train
def test_resume_on_another_world_size_is_refused(runs):
    tmp, _, _ = runs
    args = ["--steps", "6", "--batch-size", "8", "--run-dir", "two", "--out", "x", "--resume"]
    result = _run([*TRAIN, *args], tmp)
    assert result.returncode == 1
    assert "trained on 2" in result.stderr and "--nproc_per_node" in result.stderr
    assert not (tmp / "x").exists() or not any((tmp / "x").iterdir())


@pytest.mark.slow  # torchrun child processes that train
def test_a_batch_that_does_not_divide_is_refused(runs):
    tmp, _, _ = runs
    result = _run([*TRAIN, "--batch-size", "7", "--run-dir", "odd", "--out", "odd_out"], tmp, nproc=2)
    assert result.returncode != 0
    assert "batch_size 7 does not divide by the world size 2" in result.stderr
    assert not (tmp / "odd" / "training_state.safetensors").exists()


def test_world_shards_split_the_global_batch():
    parts = [World(rank, 4).shard(12) for rank in range(4)]
    assert [(s.start, s.stop) for s in parts] == [(0, 3), (3, 6), (6, 9), (9, 12)]
    assert World().shard(5) == slice(0, 5) and World().is_main and not World().distributed
    with pytest.raises(ValueError, match="batch_size 10 does not divide by the world size 4"):
        check_divides(10, 4)


def test_the_shard_of_a_loss_is_its_part_of_the_global_batch():
    """What DDP relies on: the mean of the ranks' losses is the one-process loss (same draws)."""
    from minildm.tasks import toy2d_task
    from minildm.training import step_generator

    task = toy2d_task("quick", seed=1)
    whole = task.loss(task.model, step_generator(1, 5), 8)
    parts = [task.loss(task.model, step_generator(1, 5), 8, World(r, 2).shard(8)) for r in range(2)]
    torch.testing.assert_close(torch.stack(parts).mean(), whole)
