"""The training loop every lesson shares: AdamW, warm-up, EMA, checkpoints and exact resume.

A *task* (see ``minildm.tasks``) provides the model and a ``loss(model, generator)`` that draws
its own batch. The loop here knows nothing about diffusion; it makes runs reproducible:

- every step ``s`` draws its batch, timesteps and noise from a generator seeded with
  ``(seed, s)`` (and re-seeds PyTorch's global generator for dropout), so step ``s`` is the
  same whether the run was interrupted before it or not;
- every ``checkpoint_every`` steps the weights, the EMA weights and the optimizer state are
  written atomically to ``run_dir/training_state.safetensors``, and the EMA weights are
  exported as a model checkpoint (``model.safetensors`` + ``config.json``) to ``out_dir``;
- ``resume=True`` loads the training state and continues at the next step: the final weights
  are bit-identical to an uninterrupted run on the CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from minildm.checkpoints import (
    STATE_NAME,
    load_state_dict_checked,
    load_training_state,
    save_model,
    save_training_state,
)
from minildm.utils import check_positive_int, get_device, progress


@dataclass
class TrainConfig:
    """Optimisation settings (defaults a laptop can run)."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every"):
            check_positive_int(name, getattr(self, name))
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


class EMA:
    """Exponential moving average of a model's weights: $\\theta_{ema} \\leftarrow d\\,\\theta_{ema}
    + (1 - d)\\,\\theta$. Sampling with the EMA weights gives visibly cleaner images than the last
    step's weights, because the average smooths out the noise of the last updates."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        # warm the average up: early on, d is smaller so the EMA follows the fast-moving weights
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak learning rate."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress_ = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_))))


def step_generator(seed: int, step: int) -> torch.Generator:
    """The random stream of one training step, the same on every run: seeded by (seed, step)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


LossFn = Callable[[torch.nn.Module, torch.Generator, int], torch.Tensor]


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    steps_done: int = 0
    seconds: float = 0.0
    items_per_second: float = 0.0


class TrainingDivergedError(FloatingPointError):
    """The loss or the weights became NaN or infinite: nothing was written after that."""


def _check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """Raise :class:`TrainingDivergedError` naming the first non-finite tensor of ``tensors``."""
    for name, value in tensors.items():
        if value.dtype.is_floating_point and not torch.isfinite(value).all():
            raise TrainingDivergedError(f"{what} holds NaN or infinite values (first: {name!r})")


#: settings a resumed run may change (training length, and how the checkpoint samples); any
#: change is recorded in the config's ``resumed`` list. Everything else must match the run's.
RESUMABLE_CHANGES = (
    "training.steps",
    "training.checkpoint_every",
    "scheduler.clip_sample",
    "scheduler.clip_sample_range",
    "scheduler.timestep_spacing",
    "scheduler.steps_offset",
)


def _differences(old: dict, new: dict) -> dict[str, tuple]:
    """``{"training.seed": (0, 1), ...}``: the settings of ``new`` that ``old`` does not share
    (the ``training`` and ``scheduler`` sections compared key by key)."""
    changed = {}
    for key, value in new.items():
        if key in ("training", "scheduler") and isinstance(value, dict) and isinstance(old.get(key), dict):
            changed |= {f"{key}.{k}": (old[key].get(k), v) for k, v in value.items() if old[key].get(k) != v}
        elif key != "resumed" and old.get(key) != value:
            changed[key] = (old.get(key), value)
    return changed


def _refuse_existing_state(run_dir: Path) -> None:
    """A new run must not silently replace the training state of another."""
    if (run_dir / STATE_NAME).exists():
        raise FileExistsError(
            f"{str(run_dir)!r} already holds a training state: continue it with --resume "
            "(resume=True), or replace it with --overwrite (overwrite=True), or pick another --run-dir"
        )


def _resume(
    path: Path, model: torch.nn.Module, ema: EMA, optimizer: torch.optim.Optimizer, config: dict
) -> tuple[int, dict]:
    """Load the training state at ``path`` into the model, its EMA and the optimizer, after
    checking it is this run's: same model, data and settings (only ``RESUMABLE_CHANGES`` may
    differ, and are recorded). Returns the step to continue at and the config to store."""
    state = load_training_state(path)
    old, source = state["config"], str(path.parent)
    if old.get("kind") != config.get("kind") or old.get("model") != config.get("model"):
        raise ValueError(
            f"cannot resume from {source!r}: it trained a {old.get('kind')!r} model "
            f"with another configuration than this run's {config.get('kind')!r}"
        )
    changed = _differences(old, config)
    refused = {k: pair for k, pair in changed.items() if k not in RESUMABLE_CHANGES}
    if refused:
        listing = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(refused.items()))
        raise ValueError(
            f"cannot resume from {source!r} with other settings than the run used ({listing}); "
            "use the same arguments, or start a new run with --overwrite or another --run-dir"
        )
    _check_finite(state["model"], f"the training state {str(path)!r}")
    _check_finite(state["ema"], f"the training state {str(path)!r} (EMA weights)")
    load_state_dict_checked(model, state["model"], source=source)
    ema.load_state_dict(state["ema"])
    optimizer.load_state_dict(state["optimizer"])
    resumed = list(old.get("resumed", []))
    if changed:
        resumed.append({"at_step": state["step"], "changed": {k: list(v) for k, v in changed.items()}})
    return state["step"], dict(config, resumed=resumed) if resumed else config


def _save(
    run_dir: Path | None,
    out_dir: str | Path | None,
    model: torch.nn.Module,
    ema: EMA,
    optimizer: torch.optim.Optimizer,
    step: int,
    config: dict,
) -> None:
    """Write the training state and the EMA checkpoint, after checking every weight is finite:
    a run that diverged never replaces a good file."""
    _check_finite(model.state_dict(), f"the model after step {step}")
    _check_finite(ema.state_dict(), f"the EMA weights after step {step}")
    if run_dir is not None:
        save_training_state(run_dir / STATE_NAME, model, ema.state_dict(), optimizer, step, config)
    if out_dir is not None:
        save_model(out_dir, ema.state_dict(), dict(config, steps_trained=step))


def _train_step(
    model: torch.nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    ema: EMA,
    cfg: TrainConfig,
    step: int,
) -> float:
    """One optimisation step, the same whether or not the run was interrupted before it."""
    generator = step_generator(cfg.seed, step)
    torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout and any other global randomness
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    loss = loss_fn(model, generator, cfg.batch_size)
    value = loss.item()
    if not math.isfinite(value):
        raise TrainingDivergedError(
            f"the loss became {value} at step {step}: training diverged (try a lower learning rate); "
            "the last training state and checkpoint written before it are kept"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    optimizer.step()
    ema.update(model, step)
    return value


def train(
    model: torch.nn.Module,
    loss_fn: LossFn,
    cfg: TrainConfig,
    checkpoint_config: dict,
    run_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    stop_after: int | None = None,
    show_progress: bool = True,
    overwrite: bool = False,
) -> tuple[torch.nn.Module, EMA, TrainResult]:
    """Train ``model`` for ``cfg.steps`` steps of ``loss_fn(model, generator, batch_size)``.

    ``checkpoint_config`` is stored with every checkpoint (what model, what data, which
    settings). ``resume`` continues the run in ``run_dir``; without it, a ``run_dir`` that holds a
    training state is refused unless ``overwrite``. A NaN or infinite loss stops the run with
    :class:`TrainingDivergedError` before anything is written over. ``stop_after`` ends the run
    early after that many steps, as an interruption would (used to test resuming). Returns the
    model (last weights), its EMA and the losses.
    """
    device = get_device(device)
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMA(model, cfg.ema_decay)
    run_dir = Path(run_dir) if run_dir is not None else None
    config = dict(checkpoint_config, training=asdict(cfg))
    start = 0
    if resume:
        if run_dir is None:
            raise ValueError("resume=True needs run_dir, the folder of the interrupted run")
        start, config = _resume(run_dir / STATE_NAME, model, ema, optimizer, config)
    elif run_dir is not None and not overwrite:
        _refuse_existing_state(run_dir)
    result = TrainResult()
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    began = time.perf_counter()
    model.train()
    bar = progress(
        range(start, end), desc=f"training {config.get('kind', '')}", initial=start, total=end,
        disable=not show_progress,
    )
    for step in bar:
        result.losses.append(_train_step(model, loss_fn, optimizer, ema, cfg, step))
        if step % 10 == 0:
            bar.set_postfix(loss=f"{sum(result.losses[-50:]) / len(result.losses[-50:]):.4f}")
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == end:
            _save(run_dir, out_dir, model, ema, optimizer, done, config)
    if start >= end and out_dir is not None:
        # resuming a finished run: nothing to train, but (re)write its checkpoint with this
        # run's config (e.g. after a sampling setting in the task was corrected)
        _save(None, out_dir, model, ema, optimizer, start, config)
    result.steps_done = max(end - start, 0)
    result.seconds = time.perf_counter() - began
    result.items_per_second = result.steps_done * cfg.batch_size / max(result.seconds, 1e-9)
    return model, ema, result
