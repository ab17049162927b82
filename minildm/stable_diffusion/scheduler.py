"""A scheduler from diffusers' ``scheduler/scheduler_config.json``, and back.

Every key a Stable Diffusion folder's scheduler config carries is honoured when our scheduler takes it,
ignored with the reason when it cannot change our numbers (an option of another sampler, or one that
is off), and refused when it is on and ours does not implement it (``trained_betas``,
``thresholding``, Karras sigmas on a scheduler without them): never a TypeError.

SD 1.x folders name PNDM (``PNDMScheduler`` with ``skip_prk_steps``), which minildm does not have:
they are sampled with DDIM on the same schedule (DDIM is lesson 07's and the pipelines' default).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from minildm.schedulers import SCHEDULERS, SchedulerMixin

#: diffusers' class names -> our sampler names (``SCHEDULERS``)
DIFFUSERS_CLASSES = {
    "DDIMScheduler": "ddim",
    "DDPMScheduler": "ddpm",
    "DPMSolverMultistepScheduler": "dpm++",
    "EulerDiscreteScheduler": "euler",
    "EulerAncestralDiscreteScheduler": "euler_a",
    "LCMScheduler": "lcm",
    "PNDMScheduler": "ddim",  # not implemented here: DDIM on the same schedule
}
#: our sampler names -> diffusers' class names (for save_pretrained)
CLASS_NAMES = {name: cls for cls, name in DIFFUSERS_CLASSES.items() if cls != "PNDMScheduler"}

BOOKKEEPING = ("_class_name", "_diffusers_version", "_use_default_values", "_name_or_path")

#: keys that change the numbers when on; refused (with these values meaning "off") when the
#: chosen scheduler does not take them
OFF_VALUES: dict[str, tuple[Any, ...]] = {
    "trained_betas": (None,),
    "thresholding": (False,),
    "use_karras_sigmas": (False, None),
    "use_exponential_sigmas": (False, None),
    "use_beta_sigmas": (False, None),
    "use_lu_lambdas": (False, None),
    "interpolation_type": ("linear",),
    "timestep_type": ("discrete",),
    "rescale_betas_zero_snr": (False,),
}

#: why a key that the chosen scheduler does not take changes nothing
REASONS = {
    "skip_prk_steps": "PNDM's Runge-Kutta warm-up switch (PNDM configs are sampled with DDIM here)",
    "set_alpha_to_one": "how DDIM / PNDM treat the step past t = 0",
    "clip_sample": "DDIM / DDPM's clipping of the predicted x0",
    "clip_sample_range": "DDIM / DDPM's clipping range",
    "variance_type": "DDPM's variance",
    "solver_order": "DPM-Solver's order",
    "algorithm_type": "DPM-Solver's variant",
    "solver_type": "DPM-Solver's second-order update",
    "lower_order_final": "DPM-Solver's last steps",
    "euler_at_final": "DPM-Solver's last step",
    "final_sigmas_type": "DPM-Solver's / Euler's last sigma",
    "lambda_min_clipped": "DPM-Solver's clipping of lambda",
    "sample_max_value": "dynamic thresholding's bound (thresholding is off)",
    "dynamic_thresholding_ratio": "dynamic thresholding's quantile (thresholding is off)",
    "sigma_min": "Karras sigmas' bound (they are off)",
    "sigma_max": "Karras sigmas' bound (they are off)",
    "original_inference_steps": "LCM's distillation schedule",
    "timestep_scaling": "LCM's boundary scaling",
}


def scheduler_from_diffusers(
    config: dict, sampler: str | None = None, source: str | Path = "scheduler/scheduler_config.json"
) -> tuple[SchedulerMixin, dict[str, str]]:
    """The scheduler a diffusers scheduler config describes, and ``{key: why it was ignored}``.

    ``sampler`` (a name of ``minildm.schedulers.SCHEDULERS``) chooses another sampler on the same
    schedule; by default the config's ``_class_name`` decides (PNDM: DDIM). A key that is unknown to
    every diffusers scheduler we know is ignored with a warning, as diffusers does."""
    if not isinstance(config, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(config).__name__}")
    class_name = config.get("_class_name")
    if sampler is None:
        if class_name not in DIFFUSERS_CLASSES:
            raise ValueError(
                f"{source}: _class_name {class_name!r} is not a scheduler minildm has; expected "
                f"one of {sorted(DIFFUSERS_CLASSES)} (or pass a sampler name)"
            )
        sampler = DIFFUSERS_CLASSES[class_name]
    if sampler not in SCHEDULERS:
        raise ValueError(f"sampler must be one of {sorted(SCHEDULERS)}, got {sampler!r}")
    cls = SCHEDULERS[sampler]
    takes = cls._config_names()
    kwargs, ignored = {}, {}
    if class_name == "PNDMScheduler" and sampler == "ddim":
        ignored["_class_name"] = "PNDM is not implemented here; DDIM samples the same schedule"
    unknown = []
    for key, value in config.items():
        if key in BOOKKEEPING:
            continue
        if key in takes:
            kwargs[key] = value
        elif key in OFF_VALUES:
            if value not in OFF_VALUES[key]:
                raise ValueError(
                    f"{source}: {key}={value!r} is not implemented by minildm's {cls.__name__} "
                    f"(expected {OFF_VALUES[key][0]!r})"
                )
            ignored[key] = "off"
        elif key in REASONS or key == "prediction_type":
            ignored[key] = f"not an option of {cls.__name__}: {REASONS.get(key, key)}"
        else:
            unknown.append(key)
            ignored[key] = "unknown to minildm's schedulers"
    if unknown:
        warnings.warn(f"{source}: ignoring keys unknown to minildm's schedulers: {unknown}", stacklevel=2)
    try:
        return cls(**kwargs), ignored
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: {err}") from err


def scheduler_to_diffusers(scheduler: SchedulerMixin) -> dict:
    """Our scheduler's config as diffusers' ``scheduler_config.json`` (its class name added)."""
    for name, cls in SCHEDULERS.items():
        if type(scheduler) is cls and name in CLASS_NAMES:
            return {"_class_name": CLASS_NAMES[name], **vars(scheduler.config)}
    raise ValueError(f"{type(scheduler).__name__} has no diffusers counterpart")
