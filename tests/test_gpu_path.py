"""The GPU training path, proven on the CPU: the "gpu" presets, their code path run for a few steps
with ``MINILDM_DEVICE=cpu``, the foreach EMA, losses read back in blocks, data cached per device."""

from dataclasses import replace

import pytest
import torch

from minildm.tasks import TASKS, TRAIN_BUDGETS
from minildm.tasks.common import DeviceCache, get_preset, train_config
from minildm.training import EMA, TrainingDivergedError, make_optimizer, train
from minildm.utils import get_device


@pytest.mark.parametrize("kind", sorted(TRAIN_BUDGETS))
def test_every_task_has_a_gpu_preset_that_sees_at_least_as_much_data(kind):
    full, gpu = TRAIN_BUDGETS[kind]["full"], TRAIN_BUDGETS[kind]["gpu"]
    assert gpu.batch_size > full.batch_size and gpu.steps <= full.steps  # (the VAE keeps its steps)
    assert gpu.steps * gpu.batch_size >= full.steps * full.batch_size
    assert gpu.lr <= full.lr * (gpu.batch_size / full.batch_size) ** 0.5 + 1e-12  # at most sqrt scaling
    assert train_config(TRAIN_BUDGETS[kind], "full", 5, "gpu") == replace(gpu, seed=5)
    assert train_config(TRAIN_BUDGETS[kind], "full", 5, "cpu") == replace(full, seed=5)
    # the quick budget is the same on both presets
    quick = train_config(TRAIN_BUDGETS[kind], "quick", 0)
    assert train_config(TRAIN_BUDGETS[kind], "quick", 0, "gpu") == quick


def test_the_preset_follows_the_device_unless_told(monkeypatch):
    monkeypatch.delenv("MINILDM_PRESET", raising=False)
    assert get_preset(None, "cpu") == "cpu"
    assert get_preset("gpu", "cpu") == "gpu"
    monkeypatch.setenv("MINILDM_PRESET", "gpu")
    assert get_preset(None, "cpu") == "gpu"
    monkeypatch.setenv("MINILDM_PRESET", "tpu")
    with pytest.raises(ValueError, match=r"preset \(MINILDM_PRESET\) must be one of \('cpu', 'gpu'\)"):
        get_preset()
    with pytest.raises(ValueError, match="preset must be one of"):
        train_config(TRAIN_BUDGETS["vae"], "full", 0, "fast")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_this_machine_lacks_is_refused():
    with pytest.raises(ValueError, match="device 'cuda': CUDA is not available here"):
        get_device("cuda")


# the GPU preset's code path, a few steps on the CPU (small data, and batches of 16: a batch of 1024
# changes nothing in the path but takes a minute here)
EXTRA = {"toy2d": {}, "clip": {"data_size": 600}}


@pytest.mark.parametrize("kind", ["toy2d", "pixel_ddpm", "vae", "latent_ddpm", "clip", "text2img"])
def test_the_gpu_preset_trains_on_the_cpu(kind, monkeypatch, tmp_path):
    monkeypatch.setenv("MINILDM_DEVICE", "cpu")
    task = TASKS[kind]("full", seed=0, preset="gpu", **EXTRA.get(kind, {"data_size": 300}))
    assert task.config["preset"] == "gpu" and task.train_config == TRAIN_BUDGETS[kind]["gpu"]
    cfg = replace(task.train_config, steps=2, checkpoint_every=2, batch_size=16)
    _, _, result = train(task.model, task.loss, cfg, task.config, run_dir=tmp_path / "run",
                         out_dir=tmp_path / "out", show_progress=False)
    assert len(result.losses) == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_foreach_ema_is_the_per_tensor_average():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GroupNorm(2, 4), torch.nn.Linear(4, 2))
    ema = EMA(model, decay=0.99)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model, step)
        d = min(0.99, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            expected[k].mul_(d).add_(v, alpha=1 - d)
    for k in expected:
        assert torch.equal(ema.shadow[k], expected[k]), k  # bit-identical


def test_losses_are_read_back_in_blocks_and_a_nan_is_still_caught(tmp_path):
    task = TASKS["toy2d"]("quick", seed=0)
    cfg = replace(task.train_config, steps=30, checkpoint_every=30)

    def nan_at_step_13(model, generator, batch_size):
        loss = task.loss(model, generator, batch_size)
        nan_at_step_13.calls += 1
        return loss * float("nan") if nan_at_step_13.calls == 14 else loss

    nan_at_step_13.calls = 0
    with pytest.raises(TrainingDivergedError, match="the loss became nan at step 13"):
        train(task.model, nan_at_step_13, cfg, task.config, run_dir=tmp_path, out_dir=tmp_path / "out",
              show_progress=False, sync_every=10)
    assert nan_at_step_13.calls == 20  # found when the block of steps 10-19 was read back
    assert not (tmp_path / "out").exists()  # nothing written


def test_data_is_moved_once_per_device():
    cache = DeviceCache(torch.arange(4.0))
    assert cache.on("cpu") is cache.cpu
    first = cache.on("meta")
    assert first.device.type == "meta" and cache.on(torch.device("meta")) is first


def test_fused_adamw_only_where_it_runs():
    model = torch.nn.Linear(2, 2)
    cfg = TRAIN_BUDGETS["toy2d"]["quick"]
    assert not make_optimizer(model, cfg, torch.device("cpu")).defaults.get("fused")


def test_the_vae_takes_its_posterior_noise_drawn_beforehand():
    from minildm.tasks import VAE_CONFIG
    from minildm.vae import AutoencoderKL

    vae = AutoencoderKL(VAE_CONFIG).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    eps = torch.randn(2, *VAE_CONFIG.latent_shape(), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        by_noise, _ = vae(x, noise=eps)
        by_generator, _ = vae(x, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(by_noise, by_generator)
    with pytest.raises(ValueError, match="noise must have the latent's shape"):
        vae(x, noise=eps[:1])
