"""The U-Net noise predictor eps_theta(x_t, t, c) of DDPM and Stable Diffusion.

Shape of the network (Ronneberger et al., 2015; Ho et al., 2020; Rombach et al., 2022):

    x [B, in_channels, H, W]
      conv_in                                   -> model_channels at H x W
      level 0: ResBlock (+ SpatialTransformer)  -> model_channels * channel_mult[0]   ... skip
               Downsample (stride-2 conv)       -> H/2 x W/2                          ... skip
      level 1: ...                                                                    ... skip
      middle:  ResBlock, SpatialTransformer, ResBlock at the lowest resolution
      up levels, mirror image: concatenate a skip, ResBlock (+ SpatialTransformer), Upsample
      out: GroupNorm, SiLU, conv3x3 (zero-init)  -> [B, out_channels, H, W]

Every ResBlock adds a projection of the timestep embedding to its features, so every layer
knows how noisy its input is; every SpatialTransformer can read the context (the prompt).

Names follow CompVis' ``ldm/modules/diffusionmodules/openaimodel.py``: ``ResBlock``
(``in_layers``, ``emb_layers``, ``out_layers``, ``skip_connection``), ``Downsample``, ``Upsample``,
``TimestepEmbedSequential``, ``UNetModel`` (``time_embed``, ``input_blocks``, ``middle_block``,
``output_blocks``, ``out``). One difference: attention levels are given as level indices
(0 = full resolution), not as downsampling factors.

The building blocks (``ResBlock``, ``Downsample``, ``Upsample``, ``TimestepEmbedSequential``) live
in :mod:`minildm.nn.blocks`, the shape table (``summary``, ``describe_shapes``, ``count_parameters``)
in :mod:`minildm.nn.summary`; ``minildm.nn`` exports them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from minildm.config import ConfigMixin
from minildm.nn.attention import SpatialTransformer
from minildm.nn.blocks import (
    Downsample,
    ResBlock,
    TimestepEmbedSequential,
    Upsample,
    _group_norm,
    _zero_module,
)
from minildm.nn.embeddings import TimestepEmbedding
from minildm.validation import (
    check_bool,
    check_int_tuple,
    check_positive_int,
    check_positive_number,
    check_probability,
    is_real_number,
)


@dataclass
class UNetConfig(ConfigMixin):
    """Everything that defines a :class:`UNetModel`; the defaults run on a laptop CPU.

    Attributes:
        in_channels, out_channels: channels of the input and of the predicted noise
            (3 for RGB pixels, 4 for SD-style latents).
        model_channels: channels after ``conv_in``; level ``i`` has ``model_channels * channel_mult[i]``.
        channel_mult: one multiplier per resolution level; there are ``len(channel_mult) - 1``
            downsamplings, so H and W must be divisible by ``2 ** (len(channel_mult) - 1)``.
        num_res_blocks: ResBlocks per level on the way down (``num_res_blocks + 1`` on the way up).
        attention_levels: levels (0 = full resolution) where a SpatialTransformer follows each
            ResBlock. The middle block always has one. Attention costs (H*W)^2: keep it low-res.
        num_heads, dim_head: attention heads and their width. Three ways to set them:
            both ints (ours): the same ``num_heads * dim_head`` inner width at every level;
            ``dim_head=None`` (SD 1.x: ``num_heads=8``): the head width follows the channels,
            ``dim_head = channels // num_heads``;
            ``num_heads=None`` (SD 2.x: ``dim_head=64``): the heads follow the channels,
            ``num_heads = channels // dim_head``.
            ``num_heads`` may also be one int per level (diffusers' ``attention_head_dim`` list,
            e.g. SD 2.x's (5, 10, 20, 20)); the middle block uses the last level's.
        transformer_depth: BasicTransformerBlocks per SpatialTransformer.
        use_linear_projection: ``proj_in`` / ``proj_out`` of the SpatialTransformers are Linear
            layers on the tokens (SD 2.x) instead of 1x1 convolutions (SD 1.x, ours); the same map.
        context_dim: width of the conditioning tokens (e.g. the text encoder's); ``None`` builds
            an unconditional U-Net.
        dropout: dropout in the ResBlocks and transformer blocks.
        norm_groups: GroupNorm groups; must divide every channel count in the network (SD: 32).
        norm_eps: eps of the ResBlocks' and the output's GroupNorms (SD: 1e-5; the
            SpatialTransformers' GroupNorm keeps 1e-6, as in CompVis and diffusers).
        image_size: the spatial size the model is meant for (used by :func:`summary` and by
            samplers as a default); the network itself accepts any divisible size.
        time_embed_dim: width of the timestep embedding; ``None`` means ``4 * model_channels`` as in SD.
    """

    in_channels: int = 3
    out_channels: int = 3
    model_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_levels: tuple[int, ...] = (2,)
    num_heads: int | tuple[int, ...] | None = 4
    dim_head: int | None = 16
    transformer_depth: int = 1
    context_dim: int | None = None
    dropout: float = 0.0
    norm_groups: int = 8
    image_size: int = 32
    time_embed_dim: int | None = None
    use_linear_projection: bool = False
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        # JSON gives lists; keep tuples so that configs compare equal and stay hashable-ish.
        self.channel_mult = tuple(self.channel_mult)
        self.attention_levels = tuple(self.attention_levels)
        if isinstance(self.num_heads, list):
            self.num_heads = tuple(self.num_heads)
        positive = [
            "in_channels",
            "out_channels",
            "model_channels",
            "num_res_blocks",
            "transformer_depth",
            "norm_groups",
            "image_size",
        ]
        for name in positive:
            check_positive_int(f"UNetConfig.{name}", getattr(self, name))
        for name in ("context_dim", "time_embed_dim"):
            check_positive_int(f"UNetConfig.{name}", getattr(self, name), optional=True)
        check_int_tuple("UNetConfig.channel_mult", self.channel_mult)
        levels = range(len(self.channel_mult))
        bad = [lvl for lvl in self.attention_levels if lvl not in levels]
        if bad:
            raise ValueError(
                f"UNetConfig.attention_levels must be level indices in 0..{len(self.channel_mult) - 1} "
                f"(one per channel_mult entry), got {self.attention_levels!r}"
            )
        check_probability("UNetConfig.dropout", self.dropout, high_open=True)
        channels = {self.model_channels * m for m in self.channel_mult} | {self.model_channels}
        bad_ch = sorted(c for c in channels if c % self.norm_groups)
        if bad_ch:
            raise ValueError(
                f"UNetConfig.norm_groups ({self.norm_groups}) must divide every channel count, "
                f"but not {bad_ch}"
            )
        check_bool("UNetConfig.use_linear_projection", self.use_linear_projection)
        check_positive_number("UNetConfig.norm_eps", self.norm_eps)
        self._check_heads()

    def _check_heads(self) -> None:
        """``num_heads`` / ``dim_head``: see the class docstring; every attention level must split."""
        heads, dim = self.num_heads, self.dim_head
        if heads is None and dim is None:
            raise ValueError("UNetConfig.num_heads and dim_head cannot both be None: set one (SD 1.x: "
                             "num_heads=8, dim_head=None; SD 2.x: num_heads=None, dim_head=64)")
        if isinstance(heads, tuple):
            levels = len(self.channel_mult)
            check_int_tuple("UNetConfig.num_heads", heads, length=levels, hint="one per level")
        else:
            check_positive_int("UNetConfig.num_heads", heads, optional=True, hint="or a tuple, one per level")
        check_positive_int("UNetConfig.dim_head", dim, optional=True)
        last = len(self.channel_mult) - 1
        for level in sorted(set(self.attention_levels) | {last}):
            self.heads_at(level)

    def heads_at(self, level: int) -> tuple[int, int]:
        """``(heads, dim_head)`` of the SpatialTransformers at ``level`` (the middle block's: the last)."""
        channels = self.model_channels * self.channel_mult[level]
        heads = self.num_heads[level] if isinstance(self.num_heads, tuple) else self.num_heads
        if heads is None:  # SD 2.x: fixed head width, the heads follow the channels
            heads = channels // self.dim_head
            if channels % self.dim_head:
                raise ValueError(f"UNetConfig.dim_head ({self.dim_head}) must divide the channels at "
                                 f"attention level {level} ({channels})")
            return heads, self.dim_head
        if self.dim_head is None:  # SD 1.x: fixed heads, the head width follows the channels
            if channels % heads:
                raise ValueError(f"UNetConfig.num_heads ({heads}) must divide the channels at "
                                 f"attention level {level} ({channels})")
            return heads, channels // heads
        return heads, self.dim_head

    @property
    def downsample_factor(self) -> int:
        """How much the lowest level is smaller than the input: ``2 ** (len(channel_mult) - 1)``."""
        return 2 ** (len(self.channel_mult) - 1)

    @property
    def resolved_time_embed_dim(self) -> int:
        """``time_embed_dim``, or ``4 * model_channels`` when it is None."""
        return self.time_embed_dim if self.time_embed_dim is not None else 4 * self.model_channels


class UNetModel(nn.Module):
    """The noise predictor: ``forward(x, timesteps, context=None)`` -> a tensor shaped like ``x``.

    Conditioning: a model built with ``config.context_dim`` requires a context
    ``[B, tokens, context_dim]`` on every call (for classifier-free guidance pass the encoding
    of the empty prompt, as Stable Diffusion does, not None). A model built with
    ``context_dim=None`` is unconditional and refuses a context.
    """

    # long: the blocks are built in the order of the CompVis diagram (input, middle, output), one loop each
    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config if config is not None else UNetConfig()
        mc, groups = cfg.model_channels, cfg.norm_groups
        time_embed_dim = cfg.resolved_time_embed_dim

        def res_block(in_ch: int, out_ch: int) -> ResBlock:
            return ResBlock(in_ch, out_ch, time_embed_dim, cfg.dropout, groups, cfg.norm_eps)

        def transformer(ch: int, level: int) -> SpatialTransformer:
            heads, dim_head = cfg.heads_at(level)
            return SpatialTransformer(
                ch, heads, dim_head, cfg.transformer_depth, cfg.context_dim, cfg.dropout, groups,
                use_linear_projection=cfg.use_linear_projection,
            )

        # t -> sinusoidal code of length model_channels -> MLP -> time_embed_dim
        self.time_embed = TimestepEmbedding(mc, time_embed_dim)

        # ---- down path: remember the channel count of every output, for the skips ----
        conv_in = nn.Conv2d(cfg.in_channels, mc, 3, padding=1)
        self.input_blocks = nn.ModuleList([TimestepEmbedSequential(conv_in)])
        skip_channels = [mc]
        ch = mc
        last_level = len(cfg.channel_mult) - 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers: list[nn.Module] = [res_block(ch, mc * mult)]
                ch = mc * mult
                if level in cfg.attention_levels:
                    layers.append(transformer(ch, level))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_channels.append(ch)
            if level != last_level:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                skip_channels.append(ch)

        # ---- middle, at the lowest resolution ----
        self.middle_block = TimestepEmbedSequential(
            res_block(ch, ch), transformer(ch, last_level), res_block(ch, ch)
        )

        # ---- up path: each block eats one skip (concatenated on channels), in reverse order ----
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                skip_ch = skip_channels.pop()
                layers = [res_block(ch + skip_ch, mc * mult)]
                ch = mc * mult
                if level in cfg.attention_levels:
                    layers.append(transformer(ch, level))
                if level != 0 and i == cfg.num_res_blocks:
                    layers.append(Upsample(ch))
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        # ---- output: back to out_channels; zero-init, so the untrained model predicts 0 ----
        self.out = nn.Sequential(
            _group_norm(groups, ch, cfg.norm_eps),
            nn.SiLU(),
            _zero_module(nn.Conv2d(ch, cfg.out_channels, 3, padding=1)),
        )

    def _check_inputs(
        self, x: torch.Tensor, timesteps: torch.Tensor | int | float, context: torch.Tensor | None
    ) -> torch.Tensor:
        """Validate the inputs and return the timesteps as a float tensor ``[B]``."""
        cfg = self.config
        if not torch.is_tensor(x) or x.dim() != 4:
            raise ValueError(
                f"x must be a 4-D tensor [B, {cfg.in_channels}, H, W], got "
                f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}"
            )
        b, c, h, w = x.shape
        if c != cfg.in_channels:
            raise ValueError(
                f"x must have in_channels={cfg.in_channels} channels, got {c} (shape {tuple(x.shape)})"
            )
        f = cfg.downsample_factor
        if h % f or w % f:
            raise ValueError(
                f"x height and width must be divisible by {f} (= 2 ** (len(channel_mult) - 1) "
                f"for channel_mult={cfg.channel_mult}), got {h}x{w}"
            )
        if cfg.context_dim is None:
            if context is not None:
                raise ValueError("context must be None: this U-Net is unconditional (context_dim=None)")
        else:
            if context is None:
                raise ValueError(
                    f"context is required (context_dim={cfg.context_dim}): pass "
                    f"[B, tokens, {cfg.context_dim}], e.g. the empty prompt's encoding when unconditional"
                )
            if context.dim() != 3 or context.shape[0] != b or context.shape[-1] != cfg.context_dim:
                raise ValueError(
                    f"context must have shape [B={b}, tokens, context_dim={cfg.context_dim}], "
                    f"got {tuple(context.shape)}"
                )
        # timesteps: a number, a 0-d tensor, or [B] (or [1]) -> float tensor [B] on x's device
        if not torch.is_tensor(timesteps):
            if not is_real_number(timesteps):
                raise ValueError(f"timesteps must be a number or a tensor, got {type(timesteps).__name__}")
            timesteps = torch.tensor(float(timesteps))
        if timesteps.dim() == 0 or (timesteps.dim() == 1 and timesteps.shape[0] == 1):
            timesteps = timesteps.reshape(1).expand(b)
        if timesteps.dim() != 1 or timesteps.shape[0] != b:
            raise ValueError(
                f"timesteps must be a number, a 0-d tensor or a tensor [B={b}], "
                f"got shape {tuple(timesteps.shape)}"
            )
        return timesteps.to(x.device, torch.float32)

    def forward(
        self, x: torch.Tensor, timesteps: torch.Tensor | int | float, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict the noise in ``x`` ``[B, in_channels, H, W]`` at ``timesteps``.

        Args:
            x: the noisy image or latent x_t.
            timesteps: an int/float (same t for the whole batch), a 0-d tensor or a tensor ``[B]``.
            context: ``[B, tokens, context_dim]`` for a conditional model, None for an unconditional one.

        Returns:
            ``[B, out_channels, H, W]``.
        """
        t = self._check_inputs(x, timesteps, context)
        emb = self.time_embed(t)  # [B, time_embed_dim]
        h = x
        skips = []
        for block in self.input_blocks:
            h = block(h, emb, context)
            skips.append(h)  # saved for the matching up block
        h = self.middle_block(h, emb, context)
        for block in self.output_blocks:
            # U-Net skip: concatenate the matching down-path features on the channel axis
            h = torch.cat([h, skips.pop()], dim=1)
            h = block(h, emb, context)
        return self.out(h)
