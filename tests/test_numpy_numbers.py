"""NumPy's numbers are numbers: a guidance scale, an eta or a seed from ``np.arange``/``np.linspace``
is taken exactly as the Python number it stands for, and a bool or NaN is still refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from minildm.sampling import check_guidance_scale
from minildm.schedulers import DDIMScheduler
from minildm.schedulers.ddim import check_eta
from minildm.tasks.vae import vae_task


def test_guidance_and_eta_take_numpy_floats():
    for scale in np.linspace(1.0, 7.5, 3, dtype=np.float32):
        check_guidance_scale(scale)
    for eta in np.linspace(0.0, 1.0, 3):
        check_eta(eta)
    with pytest.raises(ValueError, match="guidance_scale must be"):
        check_guidance_scale(np.float32(0.5))
    for bad in (True, np.nan, np.float64(1.5), "0.5"):
        with pytest.raises(ValueError, match="eta must be"):
            check_eta(bad)


def test_ddim_step_with_a_numpy_eta_equals_the_float_one():
    scheduler = DDIMScheduler()
    scheduler.set_timesteps(5)
    sample, output = torch.randn(1, 2, 4, 4), torch.randn(1, 2, 4, 4)
    t = scheduler.timesteps[1]
    with_numpy = scheduler.step(output, t, sample, eta=np.float32(0.5),
                                generator=torch.Generator().manual_seed(0)).prev_sample
    with_float = scheduler.step(output, t, sample, eta=0.5,
                                generator=torch.Generator().manual_seed(0)).prev_sample
    torch.testing.assert_close(with_numpy, with_float)


def test_vae_task_takes_a_numpy_seed():
    task = vae_task("quick", seed=np.int64(3), data_size=8)
    assert task.config["data"]["seed"] == 3 and type(task.train_config.seed) is int
    with pytest.raises(ValueError, match="seed must be an int"):
        vae_task("quick", seed=np.float64(3.0), data_size=8)
