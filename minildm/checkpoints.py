"""Checkpoints: safetensors weights with a JSON config beside them, written atomically.

Two kinds of files:

- a **model checkpoint** (what ``data/checkpoints/`` ships): a folder with ``model.safetensors``
  (the EMA weights) and ``config.json`` (what model it is and how it was trained);
- a **training state** (in a run folder): one ``training_state.safetensors`` file with the
  weights, the EMA weights, the optimizer state and the step, so ``--resume`` continues
  exactly where an interrupted run stopped. One file, so it can be replaced atomically.

Every file is written to a temporary name and then renamed over the old one (``os.replace``
is atomic on POSIX and Windows), so a crash mid-write never leaves a half-written checkpoint.

The typed readers of a ``config.json`` live in :mod:`minildm.checkpoint_config`. Loading is here,
and only here: :func:`build_model` makes the (untrained) model a config
describes, :func:`load_pretrained` fills it with a checkpoint's weights, :func:`load_vae` and
:func:`load_text_encoder` load the two frozen helpers of a latent pipeline. Inference imports
nothing from training: a pipeline loads its parts with these functions alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel

from minildm.backbones import get_backbone
from minildm.checkpoint_config import (
    CONFIG_NAME,
    CheckpointConfig,
    check_scale_factor,
    config_section,
    config_value,
)
from minildm.names import CHECKPOINTS, MODEL_KINDS
from minildm.schedulers import DDPMScheduler
from minildm.text import MiniCLIPConfig, TextEncoder, load_tokenizer
from minildm.utils import atomic_write, get_device
from minildm.vae import AutoencoderKL

WEIGHTS_NAME = "model.safetensors"
STATE_NAME = "training_state.safetensors"


def write_json(path: str | Path, data: dict) -> None:
    """Write ``data`` as indented JSON, atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")

    atomic_write(Path(path), write)


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}


def save_model(folder: str | Path, state_dict: dict[str, torch.Tensor], config: dict) -> Path:
    """Save a model checkpoint folder: ``model.safetensors`` + ``config.json``. With
    ``config["weights_dtype"] == "float16"`` the floating-point weights are stored in half precision
    (half the size; they are loaded back into the model's float32)."""
    folder = Path(folder)
    if config.get("weights_dtype", "float32") not in ("float32", "float16"):
        raise ValueError(f"weights_dtype must be float32 or float16, got {config['weights_dtype']!r}")
    if config.get("weights_dtype") == "float16":
        state_dict = {k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}
    atomic_write(folder / WEIGHTS_NAME, lambda tmp: save_file(_contiguous(state_dict), tmp))
    write_json(folder / CONFIG_NAME, config)
    return folder


def read_config(folder: str | Path, expected_kind: str | None = None) -> dict:
    """Read a checkpoint's ``config.json``; check its ``kind`` if ``expected_kind`` is given."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no {CONFIG_NAME} in {str(folder)!r}: expected a checkpoint folder with "
            f"{WEIGHTS_NAME} and {CONFIG_NAME} (made by `python -m minildm train`)"
        )
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path)!r} is not valid JSON ({err}): the config is damaged") from err
    if not isinstance(config, dict):
        raise ValueError(f"{str(path)!r} must hold a JSON object, got {type(config).__name__}")
    if expected_kind is not None and config.get("kind") != expected_kind:
        raise ValueError(
            f"checkpoint {str(folder)!r} holds a {config.get('kind')!r} model, expected {expected_kind!r}"
        )
    return config


def load_weights(folder: str | Path, model: torch.nn.Module) -> torch.nn.Module:
    """Load ``model.safetensors`` from ``folder`` into ``model``, strictly: a checkpoint made
    for another configuration fails with the names and shapes that differ."""
    folder = Path(folder)
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {str(folder)!r}")
    load_state_dict_checked(model, _read_safetensors(path), source=str(path), half=_stored_half(folder))
    return model


def _stored_half(folder: Path) -> bool:
    """Whether the checkpoint's config says its weights are stored in float16 (see :func:`save_model`)."""
    if not (folder / CONFIG_NAME).is_file():
        return False
    return config_value(read_config(folder), "weights_dtype", str, folder, default="float32") == "float16"


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file; a damaged file (unreadable, or NaN / inf weights)
    raises a ValueError naming it."""
    try:
        state = load_file(str(path))
    except Exception as err:  # safetensors raises its own SafetensorError, or OSError
        raise ValueError(f"{str(path)!r} is not a readable safetensors file ({err}): it is damaged") from err
    for name, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(
                f"{str(path)!r} holds NaN or infinite values in {name!r}: the file is damaged "
                "(retrain it, or restore it from git)"
            )
    return state


def load_state_dict_checked(
    model: torch.nn.Module, state: dict[str, torch.Tensor], source: str, half: bool = False
) -> None:
    """``model.load_state_dict(state)`` with an error that says what does not match: names, shapes,
    and dtypes (a tensor stored in another dtype than the model's would be cast without a word;
    ``half``: floating-point weights may be stored in float16, as :func:`save_model` writes them)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} weights (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected weights (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} with other shapes (e.g. {'; '.join(wrong[:3])})")
        raise ValueError(f"checkpoint {source!r} does not fit this model configuration: " + ", ".join(parts))
    for k in own:  # (same names and shapes now)
        stored, expected = state[k].dtype, own[k].dtype
        if stored != expected and not (half and stored == torch.float16 and expected.is_floating_point):
            raise ValueError(
                f"checkpoint {source!r}: tensor {k!r} is stored as {stored}, the model's is {expected} "
                "(the file was not written for this model, or was altered)"
            )
    model.load_state_dict(state)


# ------------------------------------------------------------------------- training state


def _flatten_optimizer(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": opt_state["param_groups"], "state": {}}
    for idx, entry in opt_state["state"].items():
        plain["state"][str(idx)] = {}
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{idx}.{name}"] = value
            else:
                plain["state"][str(idx)][name] = value
    return tensors, plain


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in plain["state"].items()}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def save_training_state(
    path: str | Path,
    model: torch.nn.Module,
    ema_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    step: int,
    config: dict,
) -> None:
    """Everything needed to resume, in one safetensors file written atomically."""
    opt_tensors, opt_plain = _flatten_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"ema.{k}": v for k, v in ema_state.items()}
    tensors |= opt_tensors
    metadata = {"step": str(step), "optimizer": json.dumps(opt_plain), "config": json.dumps(config)}
    atomic_write(Path(path), lambda tmp: save_file(_contiguous(tensors), tmp, metadata=metadata))


def read_training_config(path: str | Path) -> dict[str, Any]:
    """The config stored in a training state, without loading its tensors (checked before any work)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return json.loads(f.metadata()["config"])
    except Exception as err:
        raise ValueError(
            f"{str(path)!r} is not a readable training state ({type(err).__name__}: {err}); "
            "start afresh with --overwrite"
        ) from err


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a training state: ``{"model", "ema", "optimizer", "step", "config"}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training state at {str(path)!r}; nothing to resume")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no items())
        step, optimizer, config = int(metadata["step"]), json.loads(metadata["optimizer"]), json.loads(
            metadata["config"]
        )
    except Exception as err:  # a damaged file: SafetensorError, missing or malformed metadata
        raise ValueError(
            f"{str(path)!r} is not a readable training state ({type(err).__name__}: {err}); "
            "start afresh with --overwrite"
        ) from err

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    return {
        "model": part("model."),
        "ema": part("ema."),
        "optimizer": _unflatten_optimizer(part("optimizer."), optimizer),
        "step": step,
        "config": config,
    }


# ------------------------------------------------------------------------- loading models

#: The kinds of model a checkpoint holds (its config's ``"kind"``; the shipped folders, one record each, are
#: :data:`minildm.names.CHECKPOINTS`).
KINDS = MODEL_KINDS


def checkpoint_dir() -> Path:
    """Where shipped checkpoints live: ``data/checkpoints`` of the repository (or
    ``$MINILDM_CHECKPOINTS``)."""
    env = os.environ.get("MINILDM_CHECKPOINTS")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data" / "checkpoints"


def build_model(config: dict, folder: str | Path | None = None) -> torch.nn.Module:
    """The (untrained) model a checkpoint config describes (``folder``: where it was read, for errors):
    the backbone its ``"model"`` section names, built through :mod:`minildm.backbones`."""
    name = read_checkpoint_config(config, folder).backbone
    backbone = get_backbone(name)
    section = config_section(config, f"model.{name}", backbone.config_class, folder)  # each entry typed
    return backbone.build(backbone.config_class.from_dict(section))


def read_checkpoint_config(config: dict | str | Path, folder: str | Path | None = None) -> CheckpointConfig:
    """The typed view (:class:`~minildm.checkpoint_config.CheckpointConfig`) of a checkpoint config:
    ``config`` is the dict (read from ``folder``) or the checkpoint folder itself."""
    if not isinstance(config, dict):
        folder = config
        config = read_config(folder)
    return CheckpointConfig.from_dict(config, folder)


def scheduler_from_config(config: dict, folder: str | Path | None = None) -> DDPMScheduler:
    """The DDPM scheduler a checkpoint was trained with (its ``"scheduler"`` section)."""
    return DDPMScheduler(**config_section(config, "scheduler", DDPMScheduler, folder))


def checkpoint_folder(name: str, path: str | Path | None) -> Path:
    """``path``, or the shipped checkpoint ``name`` (its folder in ``data/checkpoints``) when it is None."""
    if path is not None:
        return Path(path)
    if name not in CHECKPOINTS:
        raise ValueError(f"no shipped checkpoint named {name!r}; the shipped ones: {', '.join(CHECKPOINTS)}")
    return checkpoint_dir() / CHECKPOINTS[name].folder


def load_pretrained(
    kind: str, path: str | Path | None = None, device: str | torch.device | None = None
) -> tuple[torch.nn.Module, DDPMScheduler | None, dict]:
    """Load a trained model: ``(model in eval mode, its scheduler, its config)``.

    ``path`` defaults to the shipped checkpoint ``data/checkpoints/<kind>``; ``kind`` may also name a
    shipped folder whose model is of another kind (``"lcm"`` and ``"text2img_unet"`` hold text2img
    models: their records in :data:`minildm.names.CHECKPOINTS` say so). A checkpoint of another kind,
    or whose weights do not fit its config, raises a ``ValueError``."""
    name = kind
    if path is None and isinstance(kind, str) and kind in CHECKPOINTS:  # a shipped folder by its name
        kind = CHECKPOINTS[kind].kind  # (its record says the kind)
    if kind not in KINDS:
        raise ValueError(f"unknown checkpoint kind {kind!r}; expected one of {list(KINDS)} "
                         f"or a shipped folder ({', '.join(sorted(CHECKPOINTS))})")
    folder = checkpoint_folder(name, path)
    config = read_config(folder, expected_kind=kind)
    try:
        model = build_model(config, folder)
        has_scheduler = kind not in ("clip", "vae")  # (no noise schedule in those)
        scheduler = scheduler_from_config(config, folder) if has_scheduler else None
    except (KeyError, TypeError, AttributeError) as err:  # what the typed reads above do not catch
        where = str(folder / CONFIG_NAME)
        raise ValueError(f"{where!r} does not describe a {kind!r} model ({err!r})") from err
    model = load_weights(folder, model)
    return model.to(get_device(device)).eval(), scheduler, config


def load_vae(
    path: str | Path | None = None, device: str | torch.device | None = None
) -> tuple[AutoencoderKL, dict]:
    """Load a trained VAE: ``(model in eval mode, config)``; ``config["scale_factor"]`` is the
    latent scale estimated from data when it was trained (``python -m minildm train vae``)."""
    model, _, config = load_pretrained("vae", path, device=device)
    check_scale_factor(config, "scale_factor", checkpoint_folder("vae", path))
    return model, config


def load_text_encoder(
    path: str | Path | None = None, device: str | torch.device | None = None
) -> tuple[TextEncoder, dict]:
    """The frozen text tower of a trained mini CLIP (``data/checkpoints/clip`` by default), with
    the shipped tokenizer: ``(TextEncoder, clip checkpoint config)``. Only the text half is built
    and read: the image tower and the projections stay on disk."""
    folder = checkpoint_folder("clip", path)
    config = read_config(folder, expected_kind="clip")
    tokenizer = load_tokenizer()
    section = config_section(config, "model.clip", MiniCLIPConfig, folder)
    clip_config = MiniCLIPConfig.from_dict(section).to_transformers(tokenizer)
    text_model = CLIPTextModel(clip_config.text_config)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {str(folder)!r}")
    prefix = "text_model."
    state = {k[len(prefix) :]: v for k, v in _read_safetensors(weights).items() if k.startswith(prefix)}
    # transformers 4 nests the layers one level deeper (CLIPTextModel.text_model); 5 does not
    load_state_dict_checked(
        getattr(text_model, "text_model", text_model), state, source=str(weights), half=_stored_half(folder)
    )
    return TextEncoder(text_model.to(get_device(device)), tokenizer), config
