"""Schedulers: the noise schedule and the update from $x_t$ to a less noisy $x_{t'}$, with diffusers'
API and numbers. They know nothing about networks (the loop that calls one is
:mod:`minildm.sampling`).

- :class:`DDPMScheduler`: ancestral sampling (lesson 02-03);
- :class:`DDIMScheduler`, :class:`DDIMInverseScheduler`: DDIM and its inversion (lesson 07).

Swap one for another with diffusers' idiom, keeping the trained schedule:
``pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)``.
"""

from minildm.schedulers.base import TIMESTEP_SPACINGS, SchedulerMixin, SchedulerOutput
from minildm.schedulers.ddim import DDIMInverseScheduler, DDIMScheduler
from minildm.schedulers.ddpm import VARIANCE_TYPES, DDPMScheduler

#: The schedulers by the names the CLI and the pipelines know them by (``--sampler ddim``).
SCHEDULERS: dict[str, type[SchedulerMixin]] = {"ddpm": DDPMScheduler, "ddim": DDIMScheduler}

__all__ = [
    "SCHEDULERS",
    "TIMESTEP_SPACINGS",
    "VARIANCE_TYPES",
    "DDIMInverseScheduler",
    "DDIMScheduler",
    "DDPMScheduler",
    "SchedulerMixin",
    "SchedulerOutput",
]
