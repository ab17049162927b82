"""Schedulers: the noise schedule and the update from $x_t$ to a less noisy $x_{t'}$, with diffusers'
API and numbers. They know nothing about networks (the loop that calls one is
:mod:`minildm.sampling`).

- :class:`DDPMScheduler`: ancestral sampling (lesson 02-03);
- :class:`DDIMScheduler`, :class:`DDIMInverseScheduler`: DDIM and its inversion (lesson 07);
- :class:`DPMSolverMultistepScheduler`: DPM-Solver++ 2M, a second-order ODE solver (lesson 11);
- :class:`EulerDiscreteScheduler`, :class:`EulerAncestralDiscreteScheduler`: Karras et al.'s
  Euler steps in sigma, deterministic and ancestral (lesson 11);
- :class:`LCMScheduler`: multistep consistency sampling of a distilled student (lesson 11).

Swap one for another with diffusers' idiom, keeping the trained schedule:
``pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)``.

Each takes every setting of diffusers' class of the same name, so that diffusers' configs (a
Stable Diffusion folder's ``scheduler_config.json``) load: a setting is implemented with diffusers'
numbers (``trained_betas``, dynamic ``thresholding``, ``use_karras_sigmas``...) or, for a value
not implemented here, refused with a ValueError naming it and what is supported.
"""

from minildm.names import SAMPLER_NAMES
from minildm.schedulers.base import TIMESTEP_SPACINGS, SchedulerMixin, SchedulerOutput
from minildm.schedulers.ddim import DDIMInverseScheduler, DDIMScheduler
from minildm.schedulers.ddpm import VARIANCE_TYPES, DDPMScheduler
from minildm.schedulers.dpmsolver import DPMSolverMultistepScheduler
from minildm.schedulers.euler import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler
from minildm.schedulers.lcm import LCMScheduler

#: The schedulers by the names the CLI and the pipelines know them by (``--sampler ddim``), those of
#: :data:`minildm.names.SAMPLER_NAMES`.
SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpm++": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "lcm": LCMScheduler,  # for a distilled student only (lesson 11)
}
if tuple(SCHEDULERS) != SAMPLER_NAMES:  # (the command line's --sampler choices, read without torch)
    raise ImportError(f"SCHEDULERS {tuple(SCHEDULERS)} and minildm.names' {SAMPLER_NAMES} differ")

__all__ = [
    "SCHEDULERS",
    "TIMESTEP_SPACINGS",
    "VARIANCE_TYPES",
    "DDIMInverseScheduler",
    "DDIMScheduler",
    "DDPMScheduler",
    "DPMSolverMultistepScheduler",
    "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler",
    "LCMScheduler",
    "SchedulerMixin",
    "SchedulerOutput",
]
