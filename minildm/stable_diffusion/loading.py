"""Load Stable Diffusion into our modules: a diffusers folder or an original single-file checkpoint.

A diffusers folder (what ``StableDiffusionPipeline.save_pretrained`` writes, and what a download of an
SD model holds)::

    model_index.json            which class each part is
    unet/     config.json  diffusion_pytorch_model.safetensors
    vae/      config.json  diffusion_pytorch_model.safetensors
    text_encoder/  config.json  model.safetensors        (transformers' CLIPTextModel)
    tokenizer/     vocab.json  merges.txt ...            (CLIPTokenizer)
    scheduler/     scheduler_config.json

Every config is read and checked against the others before a weight is read: the U-Net's channels
against the VAE's latent channels, its cross-attention width against the text encoder's, its
prediction type against the scheduler's. Only safetensors are read: a pickle (``.ckpt``, ``.bin``)
can run code when it is opened, and is refused.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel

from minildm.checkpoints import load_state_dict_checked
from minildm.nn import UNetConfig, UNetModel
from minildm.nn.attention import use_fused_attention
from minildm.schedulers import SchedulerMixin
from minildm.stable_diffusion import weights as W
from minildm.stable_diffusion.configs import (
    sd_vae_config,
    unet_config_from_diffusers,
    vae_config_from_diffusers,
)
from minildm.stable_diffusion.scheduler import scheduler_from_diffusers
from minildm.stable_diffusion.text import SDTextEncoder
from minildm.text.encoder import _quiet
from minildm.utils import get_device
from minildm.vae import AutoencoderKL, VAEConfig

MODEL_INDEX = "model_index.json"
WEIGHTS = "diffusion_pytorch_model.safetensors"
PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")


def is_sd_folder(path: str | Path) -> bool:
    """True for a diffusers pipeline folder (it holds ``model_index.json``)."""
    return (Path(path) / MODEL_INDEX).is_file()


def is_single_file(path: str | Path) -> bool:
    """True for a path that names one checkpoint file (safetensors, or a pickle to refuse)."""
    return Path(path).suffix in (".safetensors", *PICKLE_SUFFIXES)


def refuse_pickle(path: str | Path) -> None:
    """A pickle checkpoint is refused before it is opened (unpickling can run any code)."""
    if Path(path).suffix in PICKLE_SUFFIXES:
        raise ValueError(
            f"{path}: a pickle checkpoint can run code when it is opened and is not read; expected a "
            ".safetensors file (most SD models are published as one) or a diffusers folder"
        )


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; a missing or damaged file raises naming it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: expected a diffusers Stable Diffusion folder")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_weights(folder: Path, name: str = WEIGHTS) -> dict[str, torch.Tensor]:
    """The safetensors weights of one component folder (one file, or shards listed in an index)."""
    path = folder / name
    index = folder / f"{name}.index.json"
    if path.is_file():
        files = [path]
    elif index.is_file():
        files = sorted({folder / f for f in read_json(index).get("weight_map", {}).values()})
    else:
        pickles = sorted(p.name for p in folder.glob("*") if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            refuse_pickle(folder / pickles[0])
        raise FileNotFoundError(f"{path} is missing: expected the component's safetensors weights")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            state.update(load_file(str(file)))
        except Exception as err:  # safetensors' own error, or OSError
            raise ValueError(f"{file} is not a readable safetensors file ({err})") from err
    return state


def check_parts(unet: UNetConfig, vae: VAEConfig, text_width: int, where: dict[str, str]) -> None:
    """The U-Net, the VAE and the text encoder must fit together (checked before any weight is read)."""
    z = vae.z_channels
    if unet.in_channels != z or unet.out_channels != z:
        raise ValueError(
            f"{where['vae']}: the VAE has {z} latent channels, but the U-Net ({where['unet']}) takes "
            f"{unet.in_channels} and predicts {unet.out_channels}: expected the same (SD: 4)"
        )
    if text_width != unet.context_dim:
        raise ValueError(
            f"{where['text_encoder']}: the text encoder gives vectors of width {text_width}, but the U-Net "
            f"({where['unet']}) cross-attends to width {unet.context_dim}: expected the same "
            "(SD 1.x: 768, SD 2.x: 1024)"
        )


def check_prediction_type(unet: UNetConfig, scheduler: SchedulerMixin, where: str) -> None:
    """SD 2.x at 768x768 (a U-Net of sample size 96 with a 1024-wide context) was trained to
    predict v; an epsilon scheduler config with it gives noise, not pictures."""
    v_model = unet.context_dim == 1024 and unet.image_size == 96
    if v_model and scheduler.config.prediction_type != "v_prediction":
        raise ValueError(
            f"{where}: prediction_type is {scheduler.config.prediction_type!r}, but this U-Net (SD 2.x at "
            "768x768) predicts v: expected 'v_prediction' (or pass prediction_type to override)"
        )


def _text_model_config(folder: Path) -> CLIPTextConfig:
    config = read_json(folder / "config.json")
    if config.get("model_type", "clip_text_model") not in ("clip_text_model", "clip"):
        raise ValueError(
            f"{folder / 'config.json'}: model_type {config.get('model_type')!r}, "
            "expected a CLIPTextModel ('clip_text_model')"
        )
    return CLIPTextConfig.from_pretrained(str(folder))


def _model_index(root: Path) -> dict:
    index = read_json(root / MODEL_INDEX)
    missing = [p for p in PARTS if not (root / p).is_dir()]
    if missing:
        raise FileNotFoundError(
            f"{root / MODEL_INDEX}: the folder lacks {missing}; expected a Stable "
            f"Diffusion folder with {list(PARTS)}"
        )
    expected = {"unet": "UNet2DConditionModel", "vae": "AutoencoderKL", "text_encoder": "CLIPTextModel"}
    for part, cls in expected.items():
        entry = index.get(part)
        if isinstance(entry, list) and len(entry) == 2 and entry[1] != cls:
            raise ValueError(f"{root / MODEL_INDEX}: {part} is a {entry[1]}, expected a {cls}")
    return index


def load_sd_folder(
    path: str | Path,
    device: str | torch.device | None = None,
    sampler: str | None = None,
    prediction_type: str | None = None,
) -> dict[str, Any]:
    """A diffusers Stable Diffusion folder -> our modules, as the keyword arguments of
    :class:`~minildm.pipelines.TextToImagePipeline`: ``backbone`` (the U-Net), ``scheduler``, ``vae``,
    ``scale_factor`` (the VAE config's ``scaling_factor``), ``text_encoder`` and ``config``.

    ``sampler`` picks another of our samplers on the folder's schedule; ``prediction_type`` overrides
    the scheduler config's (what the U-Net was trained to predict)."""
    root = Path(path)
    index = _model_index(root)
    where = {p: str(root / p / "config.json") for p in ("unet", "vae", "text_encoder")}
    unet_cfg = unet_config_from_diffusers(read_json(root / "unet" / "config.json"), where["unet"])
    vae_cfg = vae_config_from_diffusers(read_json(root / "vae" / "config.json"), where["vae"])
    # the U-Net's sample size sets the default picture size, as in diffusers (64 latents: 512 pixels)
    vae_cfg = dataclasses.replace(vae_cfg, image_size=unet_cfg.image_size * vae_cfg.downsample_factor)
    text_cfg = _text_model_config(root / "text_encoder")
    check_parts(unet_cfg, vae_cfg, text_cfg.hidden_size, where)
    scheduler_path = root / "scheduler" / "scheduler_config.json"
    scheduler_cfg = read_json(scheduler_path)
    if prediction_type is not None:
        scheduler_cfg["prediction_type"] = prediction_type
    scheduler, ignored = scheduler_from_diffusers(scheduler_cfg, sampler, scheduler_path)
    if prediction_type is None:
        check_prediction_type(unet_cfg, scheduler, str(scheduler_path))

    device = get_device(device)
    unet = UNetModel(unet_cfg)
    state = W.unet_from_diffusers(read_weights(root / "unet"), unet_cfg)
    load_state_dict_checked(unet, state, source=str(root / "unet"))
    vae = AutoencoderKL(vae_cfg)
    load_state_dict_checked(vae, W.vae_from_diffusers(read_weights(root / "vae"), vae_cfg), str(root / "vae"))
    with _quiet():
        text_model = CLIPTextModel.from_pretrained(str(root / "text_encoder"), use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    text_encoder = SDTextEncoder(text_model, tokenizer)
    config = {
        "kind": "stable_diffusion",
        "source": str(root),
        "pipeline": index.get("_class_name"),
        "scheduler_ignored": ignored,
        "vae": {"scale_factor": vae_cfg.scaling_factor},
    }
    return {
        "backbone": use_fused_attention(unet).to(device).eval(),
        "scheduler": scheduler,
        "vae": use_fused_attention(vae).to(device).eval(),
        "scale_factor": vae_cfg.scaling_factor,
        "text_encoder": text_encoder.to(device),
        "config": config,
    }


def _infer_unet_config(state: dict[str, torch.Tensor], source: str) -> UNetConfig:
    """An original checkpoint has no config: SD 1.x / 2.x's U-Net is read off its weight shapes."""
    try:
        model_channels = state["input_blocks.0.0.weight"].shape[0]
        in_channels = state["input_blocks.0.0.weight"].shape[1]
        out_channels = state["out.2.weight"].shape[0]
        context_dim = next(v.shape[1] for k, v in state.items() if k.endswith("attn2.to_k.weight"))
        linear = next(v.dim() == 2 for k, v in state.items() if k.endswith("proj_in.weight"))
    except (KeyError, StopIteration) as err:
        raise ValueError(
            f"{source}: model.diffusion_model.* does not hold an SD U-Net ({err!r} missing)"
        ) from err
    n_input = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("input_blocks."))
    mults, attention, index, level = [], [], 1, 0
    # levels: ResBlocks until a Downsample (a block whose first layer has .op)
    num_res_blocks = 0
    while f"input_blocks.{index}.0.in_layers.0.weight" in state:
        num_res_blocks += 1
        index += 1
    while True:
        first = 1 + level * (num_res_blocks + 1)
        key = f"input_blocks.{first}.0.out_layers.3.weight"
        if key not in state:
            break
        mults.append(state[key].shape[0] // model_channels)
        if f"input_blocks.{first}.1.proj_in.weight" in state:
            attention.append(level)
        level += 1
    if not mults or 1 + len(mults) * (num_res_blocks + 1) - 1 != n_input:
        raise ValueError(f"{source}: the U-Net's input blocks do not follow SD's layout")
    # SD 1.x (CLIP ViT-L, 768): 8 heads; SD 2.x (OpenCLIP ViT-H, 1024): heads of width 64
    sd1 = context_dim == 768 or model_channels % 64 != 0
    return UNetConfig(
        in_channels=in_channels,
        out_channels=out_channels,
        model_channels=model_channels,
        channel_mult=tuple(mults),
        num_res_blocks=num_res_blocks,
        attention_levels=tuple(attention),
        num_heads=8 if sd1 else None,
        dim_head=None if sd1 else 64,
        context_dim=context_dim,
        norm_groups=32,
        image_size=64,
        use_linear_projection=linear,
    )


def _read_single_file(path: Path) -> tuple[dict, dict, dict, str]:
    """The U-Net, VAE and text-encoder weights of an original SD file under our names, and which
    text tower it holds (``"clip"`` for 1.x, ``"open_clip"`` for 2.x)."""
    try:
        state = load_file(str(path))
    except Exception as err:
        raise ValueError(f"{path} is not a readable safetensors file ({err})") from err
    unet_state = W.unet_from_compvis(state)
    vae_state = W.vae_from_compvis(state)
    text_state, text_kind = W.text_from_compvis(state)
    if not unet_state or not vae_state or text_kind == "none":
        raise ValueError(
            f"{path}: expected an SD checkpoint with model.diffusion_model.*, first_stage_model.* "
            "and cond_stage_model.* weights"
        )
    vae_state = {  # the VAE's attention projections are 1x1 convolutions in ours, linear in some files
        k: v[:, :, None, None] if ".attn_1." in k and k.endswith("weight") and v.dim() == 2 else v
        for k, v in vae_state.items()
    }
    return unet_state, vae_state, text_state, text_kind


def _single_file_configs(
    path: Path, tokenizer_root: Path, unet_state: dict, vae_state: dict, text_state: dict, text_kind: str
) -> tuple[UNetConfig, VAEConfig, CLIPTextConfig]:
    """The U-Net, VAE and text-encoder configs of a single-file checkpoint: those of the SD folder
    ``tokenizer_root`` when it is one, else SD's, read off the weights' shapes."""
    layers = 1 + max(int(k.split(".")[2]) for k in text_state if k.startswith("encoder.layers."))
    width = text_state["embeddings.token_embedding.weight"].shape[1]
    if is_sd_folder(tokenizer_root):  # the configs of a folder of the same model
        unet_cfg = unet_config_from_diffusers(
            read_json(tokenizer_root / "unet" / "config.json"), tokenizer_root / "unet" / "config.json"
        )
        vae_cfg = vae_config_from_diffusers(
            read_json(tokenizer_root / "vae" / "config.json"), tokenizer_root / "vae" / "config.json"
        )
        text_cfg = _text_model_config(tokenizer_root / "text_encoder")
        text_cfg.num_hidden_layers = layers  # (a 2.x folder dropped the last layer; the file has it)
    else:  # SD's configurations, read off the weights' shapes
        unet_cfg = _infer_unet_config(unet_state, str(path))
        vae_cfg = dataclasses.replace(
            sd_vae_config(), z_channels=vae_state["decoder.conv_in.weight"].shape[1]
        )
        text_cfg = CLIPTextConfig(
            vocab_size=text_state["embeddings.token_embedding.weight"].shape[0],
            hidden_size=width,
            intermediate_size=text_state["encoder.layers.0.mlp.fc1.weight"].shape[0],
            num_hidden_layers=layers,
            num_attention_heads=width // 64,
            max_position_embeddings=text_state["embeddings.position_embedding.weight"].shape[0],
            hidden_act="quick_gelu" if text_kind == "clip" else "gelu",
            projection_dim=width,
        )
    return unet_cfg, vae_cfg, text_cfg


def _single_file_scheduler_config(tokenizer_root: Path, prediction_type: str | None) -> dict:
    """The scheduler config of a single-file checkpoint: the SD folder's when it has one, else SD's
    schedule (scaled linear 0.00085 to 0.012), with ``prediction_type`` if given."""
    scheduler_cfg = {
        "_class_name": "DDIMScheduler",
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "num_train_timesteps": 1000,
    }
    if (tokenizer_root / "scheduler" / "scheduler_config.json").is_file():
        scheduler_cfg = read_json(tokenizer_root / "scheduler" / "scheduler_config.json")
    if prediction_type is not None:
        scheduler_cfg["prediction_type"] = prediction_type
    return scheduler_cfg


def load_single_file(
    path: str | Path,
    tokenizer_path: str | Path,
    device: str | torch.device | None = None,
    sampler: str | None = None,
    prediction_type: str | None = None,
) -> dict[str, Any]:
    """An original SD 1.x / 2.x checkpoint (``.safetensors``, CompVis' key names) -> our modules, as
    :func:`load_sd_folder` returns them. The file holds no tokenizer and no configs: ``tokenizer_path``
    is a folder with CLIP's tokenizer (a diffusers SD folder, whose ``scheduler/`` is used too, or a
    tokenizer folder). Without a scheduler config the schedule is SD's (scaled linear 0.00085 to
    0.012) with ``prediction_type`` (default ``"epsilon"``; SD 2.x at 768x768: ``"v_prediction"``)."""
    path = Path(path)
    refuse_pickle(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: expected an SD checkpoint (.safetensors)")
    tokenizer_root = Path(tokenizer_path)
    tok_dir = tokenizer_root / "tokenizer" if (tokenizer_root / "tokenizer").is_dir() else tokenizer_root
    if not tok_dir.is_dir():
        raise FileNotFoundError(
            f"{tokenizer_root}: expected a folder with CLIP's tokenizer (vocab.json, "
            "merges.txt), e.g. an SD folder's tokenizer/"
        )
    unet_state, vae_state, text_state, text_kind = _read_single_file(path)
    width = text_state["embeddings.token_embedding.weight"].shape[1]
    unet_cfg, vae_cfg, text_cfg = _single_file_configs(
        path, tokenizer_root, unet_state, vae_state, text_state, text_kind
    )
    vae_cfg = dataclasses.replace(vae_cfg, image_size=unet_cfg.image_size * vae_cfg.downsample_factor)
    check_parts(unet_cfg, vae_cfg, width, {"unet": str(path), "vae": str(path), "text_encoder": str(path)})
    scheduler_cfg = _single_file_scheduler_config(tokenizer_root, prediction_type)
    scheduler, ignored = scheduler_from_diffusers(scheduler_cfg, sampler)

    device = get_device(device)
    unet = UNetModel(unet_cfg)
    load_state_dict_checked(unet, unet_state, source=str(path))
    vae = AutoencoderKL(vae_cfg)
    load_state_dict_checked(vae, vae_state, source=str(path))
    text_model = CLIPTextModel(text_cfg)
    text_state.pop("embeddings.position_ids", None)
    load_state_dict_checked(getattr(text_model, "text_model", text_model), text_state, source=str(path))
    with _quiet():
        tokenizer = AutoTokenizer.from_pretrained(str(tok_dir))
    # SD 2.x (OpenCLIP, all 24 layers kept) reads the penultimate layer
    text_encoder = SDTextEncoder(text_model, tokenizer, clip_skip=1 if text_kind == "open_clip" else 0)
    config = {
        "kind": "stable_diffusion",
        "source": str(path),
        "scheduler_ignored": ignored,
        "vae": {"scale_factor": vae_cfg.scaling_factor},
    }
    return {
        "backbone": use_fused_attention(unet).to(device).eval(),
        "scheduler": scheduler,
        "vae": use_fused_attention(vae).to(device).eval(),
        "scale_factor": vae_cfg.scaling_factor,
        "text_encoder": text_encoder.to(device),
        "config": config,
    }
