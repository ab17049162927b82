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

On a GPU the loop keeps the device busy: the step's random draws and the data live on the device,
the loss is read back only every ``sync_every`` steps (a ``.item()`` per step would make the CPU
wait for the GPU each time), AdamW is the fused kernel and the EMA one ``torch._foreach_*`` call
per operation. Under ``torchrun`` it trains data-parallel (:mod:`minildm.distributed`).
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
from minildm.distributed import World, check_divides, current_world
from minildm.ema import EMA
from minildm.utils import get_device, progress
from minildm.validation import check_positive_int, check_positive_number, check_probability


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
        check_positive_number("lr", self.lr)
        check_probability("ema_decay", self.ema_decay, high_open=True)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak learning rate."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress_ = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_))))


def step_generator(seed: int, step: int, device: str | torch.device = "cpu") -> torch.Generator:
    """The random stream of one training step, the same on every run: seeded by (seed, step).

    On CUDA the stream lives on the GPU, so the batch is drawn there without a copy (a CUDA
    generator gives other numbers than a CPU one for the same seed: a GPU run is reproducible on
    GPUs, a CPU run on CPUs)."""
    device = torch.device(device)
    on = device if device.type == "cuda" else torch.device("cpu")
    return torch.Generator(device=on).manual_seed(seed * 1_000_003 + step)


#: ``loss(model, generator, batch_size)``, or with a 4th argument, the ``slice`` of the global batch
#: this rank computes under torchrun (every rank draws the whole batch from the same generator).
LossFn = Callable[..., torch.Tensor]


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


#: settings a resumed run may change (training length, the learning rate, e.g. lowered after the run
#: diverged, and how the checkpoint samples); any change is recorded in the config's ``resumed`` list.
#: Everything else must match the run's.
RESUMABLE_CHANGES = (
    "training.steps",
    "training.lr",
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


def check_same_setup(old: dict, preset: str | None, world_size: int, source: str) -> None:
    """A run resumes on the preset and the number of processes it started with (``old``: the
    config of its training state; one made before presets existed counts as either)."""
    old_world = old.get("world_size", 1)
    if old_world != world_size:
        raise ValueError(
            f"cannot resume from {source!r} on {world_size} process(es): it was trained on {old_world} "
            "(resume with the same torchrun --nproc_per_node)"
        )
    old_preset = old.get("preset", preset)
    if old_preset != preset:
        raise ValueError(
            f"cannot resume from {source!r} with the {preset!r} preset: it was trained with the "
            f"{old_preset!r} preset (pass --preset {old_preset})"
        )


def _resume(
    path: Path, model: torch.nn.Module, ema: EMA, optimizer: torch.optim.Optimizer, config: dict
) -> tuple[int, dict]:
    """Load the training state at ``path`` into the model, its EMA and the optimizer, after
    checking it is this run's: same model, data and settings (only ``RESUMABLE_CHANGES`` may
    differ, and are recorded). Returns the step to continue at and the config to store."""
    state = load_training_state(path)
    old, source = state["config"], str(path.parent)
    check_same_setup(old, config.get("preset"), config.get("world_size", 1), source)
    old = dict(old, world_size=old.get("world_size", 1), preset=old.get("preset", config.get("preset")))
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


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW; on CUDA the fused kernel (one launch for every parameter)."""
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)


def _train_step(
    model: torch.nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    ema: EMA,
    cfg: TrainConfig,
    step: int,
    device: torch.device,
    world: World,
    trained: torch.nn.Module | None = None,
) -> torch.Tensor:
    """One optimisation step, the same whether or not the run was interrupted before it. Returns
    the loss as a detached tensor (reading it would make the CPU wait for the GPU: see ``_Losses``).
    ``model`` is what the loss calls (DDP- or compile-wrapped); ``trained`` the plain module."""
    trained = model if trained is None else trained
    generator = step_generator(cfg.seed, step, device)
    torch.manual_seed(cfg.seed * 1_000_003 + step)  # dropout and any other global randomness
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    # a loss that reads the EMA weights (lesson 11's distillation: its target network) says so
    extra = {"ema": ema} if getattr(loss_fn, "needs_ema", False) else {}
    if world.distributed:
        loss = loss_fn(model, generator, cfg.batch_size, world.shard(cfg.batch_size), **extra)
    else:
        loss = loss_fn(model, generator, cfg.batch_size, **extra)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip:
        torch.nn.utils.clip_grad_norm_(trained.parameters(), cfg.grad_clip)
    optimizer.step()
    ema.update(trained, step)
    return loss.detach()


class _Losses:
    """The losses of the steps not yet read back; ``flush`` reads them in one transfer (averaged over
    the ranks under torchrun) and stops the run at the first one that is NaN or infinite."""

    def __init__(self, world: World) -> None:
        self.world, self.pending, self.values = world, [], []

    def add(self, step: int, loss: torch.Tensor) -> None:
        self.pending.append((step, loss))

    def flush(self) -> float:
        """Read the pending losses; returns the mean of the last 50 (for the progress bar)."""
        if not self.pending:
            return float("nan")
        stacked = torch.stack([loss for _, loss in self.pending]).float()
        if self.world.distributed:
            torch.distributed.all_reduce(stacked)
            stacked /= self.world.size
        for (step, _), value in zip(self.pending, stacked.tolist()):
            if not math.isfinite(value):
                raise TrainingDivergedError(
                    f"the loss became {value} at step {step}: training diverged (try a lower learning "
                    "rate); the last training state and checkpoint written before it are kept"
                )
            self.values.append(value)
        self.pending.clear()
        return sum(self.values[-50:]) / len(self.values[-50:])


def _start(
    run_dir: Path | None, resume: bool, overwrite: bool, model: torch.nn.Module, ema: EMA,
    optimizer: torch.optim.Optimizer, config: dict,
) -> tuple[int, dict]:
    """The step to start at and the config to store: a resumed run's, or 0 for a new run (which
    must not replace another's training state unless ``overwrite``)."""
    if resume:
        if run_dir is None:
            raise ValueError("resume=True needs run_dir, the folder of the interrupted run")
        return _resume(run_dir / STATE_NAME, model, ema, optimizer, config)
    if run_dir is not None and not overwrite:
        _refuse_existing_state(run_dir)
    return 0, config


def _wrap(model: torch.nn.Module, device: torch.device, world: World, compile: bool) -> torch.nn.Module:
    """What the loss calls: the model, in DistributedDataParallel under torchrun, compiled if asked."""
    net = model
    if world.distributed:
        ids = [device.index] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return torch.compile(net) if compile else net


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
    compile: bool = False,
    sync_every: int = 10,
) -> tuple[torch.nn.Module, EMA, TrainResult]:
    """Train ``model`` for ``cfg.steps`` steps of ``loss_fn(model, generator, batch_size)``.

    ``checkpoint_config`` is stored with every checkpoint (what model, what data, which
    settings). ``resume`` continues the run in ``run_dir``; without it, a ``run_dir`` that holds a
    training state is refused unless ``overwrite``. A NaN or infinite loss stops the run with
    :class:`TrainingDivergedError` before anything is written over (the losses are read back every
    ``sync_every`` steps and before every checkpoint). ``stop_after`` ends the run after that many
    steps, as an interruption would. ``compile``: ``torch.compile`` the model. Under torchrun the
    model is wrapped in ``DistributedDataParallel``, each rank computes its part of the global
    batch, rank 0 writes. Returns the model (last weights), its EMA and the losses.
    """
    check_positive_int("sync_every", sync_every)
    device, world = get_device(device), current_world()
    check_divides(cfg.batch_size, world.size)
    model.to(device)
    optimizer, ema = make_optimizer(model, cfg, device), EMA(model, cfg.ema_decay)
    run_dir = Path(run_dir) if run_dir is not None else None
    config = dict(checkpoint_config, training=asdict(cfg))
    config.update({"world_size": world.size} if world.distributed else {})
    start, config = _start(run_dir, resume, overwrite, model, ema, optimizer, config)
    net = _wrap(model, device, world, compile)
    losses = _Losses(world)
    end = cfg.steps if stop_after is None else min(cfg.steps, start + stop_after)
    began = time.perf_counter()
    model.train()
    what = config.get("kind", "") + (" (distilling)" if "distillation" in config else "")
    bar = progress(
        range(start, end), desc=f"training {what}", initial=start, total=end,
        disable=not show_progress or not world.is_main,
    )
    for step in bar:
        losses.add(step, _train_step(net, loss_fn, optimizer, ema, cfg, step, device, world, model))
        done = step + 1
        saving = done % cfg.checkpoint_every == 0 or done == end
        if done % sync_every == 0 or saving:
            bar.set_postfix(loss=f"{losses.flush():.4f}")
        if saving and world.is_main:
            _save(run_dir, out_dir, model, ema, optimizer, done, config)
    if start >= end and out_dir is not None and world.is_main:
        # resuming a finished run: nothing to train, but (re)write its checkpoint with this
        # run's config (e.g. after a sampling setting in the task was corrected)
        _save(None, out_dir, model, ema, optimizer, start, config)
    seconds, steps_done = time.perf_counter() - began, max(end - start, 0)
    rate = steps_done * cfg.batch_size / max(seconds, 1e-9)
    return model, ema, TrainResult(losses.values, steps_done, seconds, rate)


def time_training_steps(
    model: torch.nn.Module,
    loss_fn: LossFn,
    cfg: TrainConfig,
    device: str | torch.device | None = None,
    steps: int = 20,
    warmup: int = 3,
    compile: bool = False,
) -> float:
    """Seconds per step of ``train``'s step (draws, forward, backward, clipping, AdamW, EMA), timed
    over ``steps`` steps after ``warmup`` untimed ones, the device synchronised at both ends (for
    ``bench/train_speed.py``). Trains ``model`` in place: pass a fresh one."""
    check_positive_int("steps", steps)
    device = get_device(device)
    model.to(device).train()
    optimizer, ema = make_optimizer(model, cfg, device), EMA(model, cfg.ema_decay)
    net = _wrap(model, device, World(), compile)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for step in range(warmup):
        _train_step(net, loss_fn, optimizer, ema, cfg, step, device, World(), model)
    sync()
    began = time.perf_counter()
    losses = [_train_step(net, loss_fn, optimizer, ema, cfg, s, device, World(), model)
              for s in range(warmup, warmup + steps)]
    torch.stack(losses).tolist()  # the read-back ``train`` does every ``sync_every`` steps
    sync()
    return (time.perf_counter() - began) / steps
