"""diffusers' ``config.json`` of a U-Net or a VAE <-> our :class:`UNetConfig` / :class:`VAEConfig`.

diffusers describes the same networks with other words:

    diffusers (UNet2DConditionModel)          ours (UNetConfig)
    block_out_channels (320, 640, 1280, 1280) model_channels 320, channel_mult (1, 2, 4, 4)
    layers_per_block 2                        num_res_blocks 2
    CrossAttnDownBlock2D at level i           i in attention_levels
    attention_head_dim 8 (SD 1.x)             num_heads 8, dim_head None (the width follows)
    attention_head_dim [5, 10, 20, 20] (2.x)  num_heads (5, 10, 20, 20), dim_head None (64 each)
    cross_attention_dim 768                   context_dim 768
    use_linear_projection, norm_num_groups,   use_linear_projection, norm_groups, norm_eps,
    norm_eps, transformer_layers_per_block    transformer_depth

(diffusers' ``attention_head_dim`` is, for SD, the number of heads: a name kept for old configs.)
Every other key must hold the value SD uses; a config that needs what our U-Net does not have (a
class embedding, another mid block, ...) is refused with the key, its value and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from minildm.nn import UNetConfig
from minildm.vae import VAEConfig

#: Keys a diffusers config carries for bookkeeping only.
BOOKKEEPING = ("_class_name", "_diffusers_version", "_name_or_path", "_use_default_values")

#: UNet2DConditionModel keys our UNetModel has no counterpart for, with the one value it can take
#: (diffusers' default, SD's value): anything else is refused.
UNET_FIXED: dict[str, Any] = {
    "center_input_sample": False,
    "flip_sin_to_cos": True,  # cos first, then sin, as timestep_embedding
    "freq_shift": 0,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "only_cross_attention": False,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "encoder_hid_dim": None,
    "encoder_hid_dim_type": None,
    "num_attention_heads": None,
    "dual_cross_attention": False,
    "class_embed_type": None,
    "addition_embed_type": None,
    "addition_time_embed_dim": None,
    "num_class_embeds": None,
    "resnet_time_scale_shift": "default",
    "resnet_skip_time_act": False,
    "resnet_out_scale_factor": 1.0,
    "time_embedding_type": "positional",
    "time_embedding_act_fn": None,
    "timestep_post_act": None,
    "time_cond_proj_dim": None,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "projection_class_embeddings_input_dim": None,
    "attention_type": "default",
    "class_embeddings_concat": False,
    "mid_block_only_cross_attention": None,
    "cross_attention_norm": None,
    "reverse_transformer_layers_per_block": None,
}

#: Keys that change nothing in float32 arithmetic, and why they are ignored.
UNET_IGNORED = {
    "upcast_attention": "a float16 safeguard (softmax in float32); the parity checks run in float32",
    "addition_embed_type_num_heads": "used only with an addition embedding, which SD has none of",
}

#: diffusers' defaults for the keys a config.json may leave out (SD 1.x configs predate some).
UNET_DEFAULTS: dict[str, Any] = {
    **UNET_FIXED,
    "sample_size": None,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": [
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "dropout": 0.0,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "cross_attention_dim": 1280,
    "transformer_layers_per_block": 1,
    "attention_head_dim": 8,
    "use_linear_projection": False,
    "time_embedding_dim": None,
    "upcast_attention": False,
    "addition_embed_type_num_heads": 64,
}

VAE_FIXED: dict[str, Any] = {
    "act_fn": "silu",
    "shift_factor": None,
    "latents_mean": None,
    "latents_std": None,
    "use_quant_conv": True,
    "use_post_quant_conv": True,
}
VAE_IGNORED = {"force_upcast": "a float16 safeguard (decode in float32); the parity checks run in float32"}
VAE_DEFAULTS: dict[str, Any] = {
    **VAE_FIXED,
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D"],
    "block_out_channels": [64],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 32,
    "scaling_factor": 0.18215,
    "force_upcast": True,
    "mid_block_add_attention": True,
}


def _refuse(source: str | Path, message: str) -> ValueError:
    return ValueError(f"{source}: {message}")


def _merged(config: dict, defaults: dict, fixed: dict, ignored: dict, source: str | Path) -> dict:
    """``config`` over diffusers' ``defaults``; unknown keys and unsupported values refused."""
    unknown = sorted(set(config) - set(defaults) - set(BOOKKEEPING))
    if unknown:
        raise _refuse(source, f"unknown keys {unknown} (this loader knows diffusers 0.42's)")
    merged = {**defaults, **{k: v for k, v in config.items() if k not in BOOKKEEPING}}
    for key, expected in fixed.items():
        value = merged[key]
        same = value == expected or (isinstance(expected, float) and value == int(expected))
        if not same:
            raise _refuse(
                source, f"{key}={value!r} is not supported (our modules implement {expected!r}, SD's)"
            )
    for key in ignored:
        merged.pop(key, None)
    return merged


def _channel_mult(channels: list[int], key: str, source: str | Path) -> tuple[int, tuple[int, ...]]:
    base = channels[0]
    if any(c % base for c in channels):
        raise _refuse(source, f"{key}={channels} must be multiples of its first entry (ours: base * mult)")
    return base, tuple(c // base for c in channels)


# long: one line per key of diffusers' U-Net config, each mapped, checked or refused
def unet_config_from_diffusers(config: dict, source: str | Path = "unet/config.json") -> UNetConfig:
    """A diffusers ``UNet2DConditionModel`` config -> the :class:`UNetConfig` of the same network."""
    d = _merged(config, UNET_DEFAULTS, UNET_FIXED, UNET_IGNORED, source)
    model_channels, mult = _channel_mult(list(d["block_out_channels"]), "block_out_channels", source)
    levels = len(mult)
    down, up = list(d["down_block_types"]), list(d["up_block_types"])
    if len(down) != levels or len(up) != levels:
        raise _refuse(
            source,
            f"down_block_types and up_block_types need {levels} entries "
            f"(one per block_out_channels), got {len(down)} and {len(up)}",
        )
    attention = []
    for level, (kind_down, kind_up) in enumerate(zip(down, reversed(up))):
        if kind_down not in ("CrossAttnDownBlock2D", "DownBlock2D"):
            raise _refuse(
                source,
                f"down_block_types[{level}]={kind_down!r}: expected CrossAttnDownBlock2D or DownBlock2D",
            )
        expected_up = "CrossAttnUpBlock2D" if kind_down == "CrossAttnDownBlock2D" else "UpBlock2D"
        if kind_up != expected_up:
            raise _refuse(
                source,
                f"up_block_types[{levels - 1 - level}]={kind_up!r}: expected {expected_up!r}, "
                "the mirror of the down block at the same resolution",
            )
        if kind_down == "CrossAttnDownBlock2D":
            attention.append(level)
    per_level = {
        "layers_per_block": d["layers_per_block"],
        "transformer_layers_per_block": d["transformer_layers_per_block"],
    }
    for key, value in per_level.items():
        if isinstance(value, (list, tuple)):
            if len(set(value)) != 1:
                raise _refuse(source, f"{key}={value!r}: ours takes one value for every level")
            per_level[key] = value[0]
    heads = d["attention_head_dim"]  # diffusers' name for the number of heads (see the module docstring)
    heads = tuple(heads) if isinstance(heads, (list, tuple)) else heads
    if isinstance(heads, tuple) and len(set(heads)) == 1:
        heads = heads[0]
    if d["cross_attention_dim"] is None or isinstance(d["cross_attention_dim"], (list, tuple)):
        raise _refuse(
            source, f"cross_attention_dim={d['cross_attention_dim']!r}: expected one int (SD: 768, 1024)"
        )
    try:
        return UNetConfig(
            in_channels=d["in_channels"],
            out_channels=d["out_channels"],
            model_channels=model_channels,
            channel_mult=mult,
            num_res_blocks=per_level["layers_per_block"],
            attention_levels=tuple(attention),
            num_heads=heads,
            dim_head=None,
            transformer_depth=per_level["transformer_layers_per_block"],
            context_dim=d["cross_attention_dim"],
            dropout=float(d["dropout"]),
            norm_groups=d["norm_num_groups"],
            image_size=d["sample_size"] or 64,
            time_embed_dim=d["time_embedding_dim"],
            use_linear_projection=bool(d["use_linear_projection"]),
            norm_eps=float(d["norm_eps"]),
        )
    except ValueError as err:
        raise _refuse(source, f"does not describe a U-Net we can build ({err})") from err


def unet_config_to_diffusers(cfg: UNetConfig) -> dict:
    """Our :class:`UNetConfig` -> a diffusers ``UNet2DConditionModel`` config. diffusers' attention
    has an inner width equal to the channels: a U-Net whose ``heads * dim_head`` differs at an
    attention level cannot be written (ValueError naming the level)."""
    levels = len(cfg.channel_mult)
    if cfg.context_dim is None:
        raise ValueError(
            "an unconditional U-Net (context_dim=None) has no diffusers UNet2DConditionModel form"
        )
    heads = []
    for level in range(levels):
        channels = cfg.model_channels * cfg.channel_mult[level]
        h, dim = (
            cfg.heads_at(level) if level in cfg.attention_levels or level == levels - 1 else (1, channels)
        )
        if h * dim != channels:
            raise ValueError(
                f"the U-Net's attention at level {level} has {h} heads x {dim} = {h * dim} inner width for "
                f"{channels} channels; diffusers' Transformer2DModel needs heads x width = channels "
                "(train with dim_head=None, SD 1.x's layout, to export)"
            )
        heads.append(h)
    attention = [level in cfg.attention_levels for level in range(levels)]
    return {
        "_class_name": "UNet2DConditionModel",
        "sample_size": cfg.image_size,
        "in_channels": cfg.in_channels,
        "out_channels": cfg.out_channels,
        "block_out_channels": [cfg.model_channels * m for m in cfg.channel_mult],
        "layers_per_block": cfg.num_res_blocks,
        "down_block_types": ["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attention],
        "up_block_types": ["CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)],
        "attention_head_dim": heads if len(set(heads)) > 1 else heads[0],
        "cross_attention_dim": cfg.context_dim,
        "transformer_layers_per_block": cfg.transformer_depth,
        "use_linear_projection": cfg.use_linear_projection,
        "norm_num_groups": cfg.norm_groups,
        "norm_eps": cfg.norm_eps,
        "dropout": cfg.dropout,
        "time_embedding_dim": cfg.time_embed_dim,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "downsample_padding": 1,
        "mid_block_scale_factor": 1,
        "act_fn": "silu",
    }


def vae_config_from_diffusers(config: dict, source: str | Path = "vae/config.json") -> VAEConfig:
    """A diffusers ``AutoencoderKL`` config -> the :class:`VAEConfig` of the same network; the latent
    scale (``scaling_factor``, 0.18215 for SD 1.x/2.x) comes along in the config."""
    d = _merged(config, VAE_DEFAULTS, VAE_FIXED, VAE_IGNORED, source)
    ch, mult = _channel_mult(list(d["block_out_channels"]), "block_out_channels", source)
    for key, kind in (("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")):
        if list(d[key]) != [kind] * len(mult):
            raise _refuse(source, f"{key}={d[key]!r}: expected {[kind] * len(mult)}")
    try:
        return VAEConfig(
            in_channels=d["in_channels"],
            out_channels=d["out_channels"],
            z_channels=d["latent_channels"],
            ch=ch,
            ch_mult=mult,
            num_res_blocks=d["layers_per_block"],
            attn_in_middle=bool(d["mid_block_add_attention"]),
            norm_groups=d["norm_num_groups"],
            image_size=d["sample_size"],
            norm_eps=1e-6,  # diffusers' VAE blocks use 1e-6 throughout
            downsample_padding=0,  # diffusers' Encoder pads bottom and right only
            scaling_factor=float(d["scaling_factor"]),
        )
    except ValueError as err:
        raise _refuse(source, f"does not describe a VAE we can build ({err})") from err


def vae_config_to_diffusers(cfg: VAEConfig, scaling_factor: float) -> dict:
    """Our :class:`VAEConfig` -> a diffusers ``AutoencoderKL`` config with the given latent scale.
    diffusers' encoder pads its downsampling asymmetrically (SD's way): a VAE built with
    ``downsample_padding=1`` (ours) cannot be written, and neither can another ``norm_eps``."""
    if cfg.downsample_padding != 0 and len(cfg.ch_mult) > 1:
        raise ValueError(
            "the VAE's encoder pads its downsampling on every side (downsample_padding=1); diffusers' "
            "AutoencoderKL pads bottom and right only (SD's way, downsample_padding=0): its encoder would "
            "compute other latents"
        )
    if cfg.norm_eps != 1e-6:
        raise ValueError(f"the VAE's norm_eps is {cfg.norm_eps}; diffusers' AutoencoderKL uses 1e-6")
    return {
        "_class_name": "AutoencoderKL",
        "in_channels": cfg.in_channels,
        "out_channels": cfg.out_channels,
        "latent_channels": cfg.z_channels,
        "block_out_channels": [cfg.ch * m for m in cfg.ch_mult],
        "down_block_types": ["DownEncoderBlock2D"] * len(cfg.ch_mult),
        "up_block_types": ["UpDecoderBlock2D"] * len(cfg.ch_mult),
        "layers_per_block": cfg.num_res_blocks,
        "norm_num_groups": cfg.norm_groups,
        "sample_size": cfg.image_size,
        "scaling_factor": scaling_factor,
        "mid_block_add_attention": cfg.attn_in_middle,
        "act_fn": "silu",
    }


def sd15_unet_config() -> UNetConfig:
    """SD 1.5's U-Net (860M parameters): 320 channels x (1, 2, 4, 4), 8 heads, context 768."""
    return UNetConfig(
        in_channels=4,
        out_channels=4,
        model_channels=320,
        channel_mult=(1, 2, 4, 4),
        num_res_blocks=2,
        attention_levels=(0, 1, 2),
        num_heads=8,
        dim_head=None,
        context_dim=768,
        norm_groups=32,
        image_size=64,
    )


def sd2_unet_config() -> UNetConfig:
    """SD 2.x's U-Net: SD 1.5's with heads of width 64, Linear projections and context 1024."""
    return UNetConfig(
        in_channels=4,
        out_channels=4,
        model_channels=320,
        channel_mult=(1, 2, 4, 4),
        num_res_blocks=2,
        attention_levels=(0, 1, 2),
        num_heads=None,
        dim_head=64,
        context_dim=1024,
        norm_groups=32,
        image_size=96,
        use_linear_projection=True,
    )


def sd_vae_config() -> VAEConfig:
    """SD 1.x/2.x's VAE: 128 channels x (1, 2, 4, 4), f = 8, 4 latent channels, scale 0.18215."""
    return VAEConfig(
        ch=128,
        ch_mult=(1, 2, 4, 4),
        num_res_blocks=2,
        z_channels=4,
        norm_groups=32,
        image_size=512,
        norm_eps=1e-6,
        downsample_padding=0,
        scaling_factor=0.18215,
    )
