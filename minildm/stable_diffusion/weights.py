"""Weight names: diffusers' ``UNet2DConditionModel`` / ``AutoencoderKL`` <-> our CompVis-named modules,
and the original single-file checkpoints (``model.diffusion_model.*``, ``first_stage_model.*``).

Our U-Net and VAE keep CompVis' names, so a CompVis checkpoint needs almost no renaming. diffusers
regrouped the same layers into blocks; with ``n = num_res_blocks`` the U-Net's are

    ours (CompVis)                                   diffusers
    input_blocks.0.0                                 conv_in
    input_blocks.{1 + l (n + 1) + j}.0 / .1          down_blocks.l.resnets.j / .attentions.j
    input_blocks.{(l + 1)(n + 1)}.0.op               down_blocks.l.downsamplers.0.conv
    middle_block.0 / .1 / .2                         mid_block.resnets.0 / .attentions.0 / .resnets.1
    output_blocks.{i (n + 1) + j}.0 / .1             up_blocks.i.resnets.j / .attentions.j   (i = 0: lowest)
    output_blocks.{i (n + 1) + n}.{last}.conv        up_blocks.i.upsamplers.0.conv
    out.0 / out.2                                    conv_norm_out / conv_out
    time_embed.linear_1 / linear_2 (CompVis: .0, .2) time_embedding.linear_1 / linear_2
    ResBlock in_layers.0 / .2, emb_layers.1,         ResnetBlock2D norm1 / conv1, time_emb_proj,
             out_layers.0 / .3, skip_connection                    norm2 / conv2, conv_shortcut

and the SpatialTransformers' insides (``norm``, ``proj_in``, ``transformer_blocks.k.attn1.to_q`` ...)
are named alike. The VAE: ``encoder.down.l.block.j`` <-> ``encoder.down_blocks.l.resnets.j``,
``decoder.up.l`` <-> ``decoder.up_blocks.{L - 1 - l}`` (diffusers counts from the lowest resolution),
``nin_shortcut`` <-> ``conv_shortcut``, the middle attention's 1x1 convs ``q, k, v, proj_out`` <-> the
Linear layers ``to_q, to_k, to_v, to_out.0`` (the same matrix, without the two trailing 1s).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from minildm.nn import UNetConfig
from minildm.vae import VAEConfig

RESBLOCK = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
VAE_RESBLOCK = {
    "norm1": "norm1",
    "conv1": "conv1",
    "norm2": "norm2",
    "conv2": "conv2",
    "nin_shortcut": "conv_shortcut",
}
VAE_ATTENTION = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}
#: the names diffusers used for the VAE's attention before 0.14 (still in some SD 1.x folders)
VAE_ATTENTION_OLD = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _unet_prefixes(cfg: UNetConfig) -> Iterator[tuple[str, str]]:
    """(our module prefix, diffusers' module prefix) for every module that holds weights."""
    n, levels = cfg.num_res_blocks, len(cfg.channel_mult)
    yield "time_embed.linear_1", "time_embedding.linear_1"
    yield "time_embed.linear_2", "time_embedding.linear_2"
    yield "input_blocks.0.0", "conv_in"
    for level in range(levels):
        for j in range(n):
            index = 1 + level * (n + 1) + j
            yield from _resblock(f"input_blocks.{index}.0", f"down_blocks.{level}.resnets.{j}")
            if level in cfg.attention_levels:
                yield f"input_blocks.{index}.1", f"down_blocks.{level}.attentions.{j}"
        if level != levels - 1:
            yield f"input_blocks.{(level + 1) * (n + 1)}.0.op", f"down_blocks.{level}.downsamplers.0.conv"
    yield from _resblock("middle_block.0", "mid_block.resnets.0")
    yield "middle_block.1", "mid_block.attentions.0"
    yield from _resblock("middle_block.2", "mid_block.resnets.1")
    for i, level in enumerate(reversed(range(levels))):
        attention = level in cfg.attention_levels
        for j in range(n + 1):
            index = i * (n + 1) + j
            yield from _resblock(f"output_blocks.{index}.0", f"up_blocks.{i}.resnets.{j}")
            if attention:
                yield f"output_blocks.{index}.1", f"up_blocks.{i}.attentions.{j}"
            if level != 0 and j == n:
                yield (
                    f"output_blocks.{index}.{2 if attention else 1}.conv",
                    f"up_blocks.{i}.upsamplers.0.conv",
                )
    yield "out.0", "conv_norm_out"
    yield "out.2", "conv_out"


def _resblock(ours: str, theirs: str) -> Iterator[tuple[str, str]]:
    for a, b in RESBLOCK.items():
        yield f"{ours}.{a}", f"{theirs}.{b}"


def _vae_prefixes(cfg: VAEConfig) -> Iterator[tuple[str, str]]:
    levels = len(cfg.ch_mult)
    for part in ("encoder", "decoder"):
        yield f"{part}.conv_in", f"{part}.conv_in"
        yield f"{part}.norm_out", f"{part}.conv_norm_out"
        yield f"{part}.conv_out", f"{part}.conv_out"
        for ours, theirs in (("block_1", "resnets.0"), ("block_2", "resnets.1")):
            for a, b in VAE_RESBLOCK.items():
                yield f"{part}.mid.{ours}.{a}", f"{part}.mid_block.{theirs}.{b}"
        for a, b in VAE_ATTENTION.items():
            yield f"{part}.mid.attn_1.{a}", f"{part}.mid_block.attentions.0.{b}"
    for level in range(levels):
        for j in range(cfg.num_res_blocks):
            for a, b in VAE_RESBLOCK.items():
                yield f"encoder.down.{level}.block.{j}.{a}", f"encoder.down_blocks.{level}.resnets.{j}.{b}"
        if level != levels - 1:
            yield f"encoder.down.{level}.downsample.op", f"encoder.down_blocks.{level}.downsamplers.0.conv"
        i = levels - 1 - level
        for j in range(cfg.num_res_blocks + 1):
            for a, b in VAE_RESBLOCK.items():
                yield f"decoder.up.{level}.block.{j}.{a}", f"decoder.up_blocks.{i}.resnets.{j}.{b}"
        if level != 0:
            yield f"decoder.up.{level}.upsample.conv", f"decoder.up_blocks.{i}.upsamplers.0.conv"
    yield "quant_conv", "quant_conv"
    yield "post_quant_conv", "post_quant_conv"


def _rename(name: str, table: list[tuple[str, str]]) -> str | None:
    """``name`` with the longest matching module prefix of ``table`` replaced (None: no match)."""
    best = None
    for src, dst in table:
        if (name == src or name.startswith(src + ".")) and (best is None or len(src) > len(best[0])):
            best = (src, dst)
    return None if best is None else best[1] + name[len(best[0]) :]


def _convert(
    state: dict[str, torch.Tensor], table: list[tuple[str, str]], what: str
) -> dict[str, torch.Tensor]:
    out, unmatched = {}, []
    for name, value in state.items():
        new = _rename(name, table)
        if new is None:
            unmatched.append(name)
        else:
            out[new] = value
    if unmatched:
        raise ValueError(f"{what}: {len(unmatched)} weights have no counterpart (e.g. {unmatched[:3]})")
    return out


def unet_from_diffusers(state: dict[str, torch.Tensor], cfg: UNetConfig) -> dict[str, torch.Tensor]:
    """A diffusers ``UNet2DConditionModel`` state dict -> our :class:`UNetModel`'s names."""
    table = [(theirs, ours) for ours, theirs in _unet_prefixes(cfg)]
    return _convert(state, table, "the diffusers U-Net")


def unet_to_diffusers(state: dict[str, torch.Tensor], cfg: UNetConfig) -> dict[str, torch.Tensor]:
    """Our :class:`UNetModel`'s state dict -> diffusers' ``UNet2DConditionModel`` names."""
    return _convert(state, list(_unet_prefixes(cfg)), "our U-Net")


def vae_from_diffusers(state: dict[str, torch.Tensor], cfg: VAEConfig) -> dict[str, torch.Tensor]:
    """A diffusers ``AutoencoderKL`` state dict (new or pre-0.14 attention names) -> our names; the
    middle attention's Linear weights ``[C, C]`` become our 1x1 convs' ``[C, C, 1, 1]``."""
    renamed = {}
    for name, value in state.items():
        for old, new in VAE_ATTENTION_OLD.items():
            name = name.replace(f"attentions.0.{old}.", f"attentions.0.{new}.")
        renamed[name] = value
    table = [(theirs, ours) for ours, theirs in _vae_prefixes(cfg)]
    out = _convert(renamed, table, "the diffusers VAE")
    return {
        k: v[:, :, None, None] if ".attn_1." in k and k.endswith("weight") and v.dim() == 2 else v
        for k, v in out.items()
    }


def vae_to_diffusers(state: dict[str, torch.Tensor], cfg: VAEConfig) -> dict[str, torch.Tensor]:
    """Our :class:`AutoencoderKL`'s state dict -> diffusers' names (the attention's 1x1 convs as Linear)."""
    out = _convert(state, list(_vae_prefixes(cfg)), "our VAE")
    return {k: v.flatten(1) if ".attentions.0." in k and v.dim() == 4 else v for k, v in out.items()}


# ------------------------------------------------------------------ original single-file checkpoints

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model."


def unet_from_compvis(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``model.diffusion_model.*`` of an original SD checkpoint -> our names (only ``time_embed``
    differs: CompVis' ``Sequential`` indices 0 and 2 are our ``linear_1`` and ``linear_2``)."""
    out = {}
    for name, value in state.items():
        if name.startswith(UNET_PREFIX):
            name = name[len(UNET_PREFIX) :]
            name = name.replace("time_embed.0.", "time_embed.linear_1.").replace(
                "time_embed.2.", "time_embed.linear_2."
            )
            out[name] = value
    return out


def vae_from_compvis(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``first_stage_model.*`` -> our names, which are CompVis' (the training loss's weights, if the
    file kept them, are dropped)."""
    return {
        k[len(VAE_PREFIX) :]: v
        for k, v in state.items()
        if k.startswith(VAE_PREFIX) and not k.startswith(VAE_PREFIX + "loss.")
    }


def text_from_compvis(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """``cond_stage_model.*`` -> a transformers ``CLIPTextModel`` state dict and the kind of encoder:
    ``"clip"`` (SD 1.x: ``cond_stage_model.transformer.*``, transformers' names already) or
    ``"open_clip"`` (SD 2.x: ``cond_stage_model.model.*``, OpenCLIP's names, converted here; its
    fused ``in_proj`` holds Q, K and V one above the other)."""
    prefix = TEXT_PREFIX + "transformer."
    if any(k.startswith(prefix) for k in state):
        out = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        return {k.removeprefix("text_model."): v for k, v in out.items()}, "clip"
    prefix = TEXT_PREFIX + "model."
    src = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not src:
        return {}, "none"
    out = {
        "embeddings.token_embedding.weight": src["token_embedding.weight"],
        "embeddings.position_embedding.weight": src["positional_embedding"],
        "final_layer_norm.weight": src["ln_final.weight"],
        "final_layer_norm.bias": src["ln_final.bias"],
    }
    layers = sorted({int(k.split(".")[2]) for k in src if k.startswith("transformer.resblocks.")})
    names = {
        "ln_1": "layer_norm1",
        "ln_2": "layer_norm2",
        "mlp.c_fc": "mlp.fc1",
        "mlp.c_proj": "mlp.fc2",
        "attn.out_proj": "self_attn.out_proj",
    }
    for i in layers:
        block = f"transformer.resblocks.{i}."
        ours = f"encoder.layers.{i}."
        for a, b in names.items():
            for p in ("weight", "bias"):
                out[ours + f"{b}.{p}"] = src[block + f"{a}.{p}"]
        for p in ("weight", "bias"):
            q, k, v = src[block + f"attn.in_proj_{p}"].chunk(3, dim=0)
            out[ours + f"self_attn.q_proj.{p}"] = q
            out[ours + f"self_attn.k_proj.{p}"] = k
            out[ours + f"self_attn.v_proj.{p}"] = v
    return out, "open_clip"
