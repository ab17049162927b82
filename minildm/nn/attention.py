"""Attention for the U-Net: self-attention, cross-attention and the SpatialTransformer.

Convolutions only see a small neighbourhood; attention lets every position of the feature map
look at every other position (self-attention) or at every token of a text prompt
(cross-attention). Stable Diffusion wraps both in a ``SpatialTransformer`` that turns the
feature map ``[B, C, H, W]`` into ``H * W`` tokens, runs transformer blocks on them and turns
them back into a feature map.

Scaled dot-product attention (Vaswani et al., 2017), per head:
    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_head)) V
with Q = x W_q from the image, and K = c W_k, V = c W_v from the *context* c: the image itself
for self-attention, the text encoder's output for cross-attention. The output has one row per
query, so a prompt of any length conditions every position of the image.

Names follow CompVis' ``ldm/modules/attention.py``: ``CrossAttention`` (``to_q``, ``to_k``,
``to_v``, ``to_out``), ``GEGLU``, ``FeedForward``, ``BasicTransformerBlock`` (``attn1``, ``attn2``,
``ff``, ``norm1..3``) and ``SpatialTransformer`` (``norm``, ``proj_in``, ``transformer_blocks``,
``proj_out``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minildm.validation import check_bool, check_positive_int


class CrossAttention(nn.Module):
    """Multi-head attention with queries from ``x`` and keys/values from ``context``.

    With ``context_dim=None`` the keys and values come from ``x`` itself: that is
    self-attention (see :class:`SelfAttention`). The attention is written out with plain
    matmuls and a softmax so that it can be read line by line.

    Args:
        query_dim: width of the tokens of ``x`` (and of the output).
        context_dim: width of the context tokens; ``None`` for self-attention.
        heads: number of attention heads.
        dim_head: width of each head; the inner width is ``heads * dim_head``.
        dropout: dropout after the output projection.

    Attributes:
        save_attention: set to ``True`` to keep the attention probabilities of the last call
            in ``last_attention`` (detached, ``[B, heads, N_query, N_context]``), e.g. to draw
            the attention map of each prompt word. Off by default to save memory.
        fused: compute the same softmax(Q K^T / sqrt(d_head)) V with PyTorch's fused
            ``scaled_dot_product_attention``, which never holds the ``[N_q, N_c]`` matrix (SD's
            64x64 level has 4096 tokens: 8 heads x 4096^2 floats = 512 MB per image otherwise).
            Off by default (the plain matmuls above are what the lessons read, and the shipped
            models' numbers); :func:`use_fused_attention` switches a whole model. While
            ``save_attention`` is on, the plain path runs.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None = None,
        heads: int = 4,
        dim_head: int = 16,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive_int("query_dim", query_dim)
        if context_dim is not None:
            check_positive_int("context_dim", context_dim)
        check_positive_int("heads", heads)
        check_positive_int("dim_head", dim_head)
        inner_dim = heads * dim_head
        self.query_dim = query_dim
        self.context_dim = context_dim
        self.heads = heads
        self.dim_head = dim_head
        self.scale = dim_head**-0.5  # 1 / sqrt(d_head) keeps the logits' variance ~1
        kv_dim = query_dim if context_dim is None else context_dim
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_k = nn.Linear(kv_dim, inner_dim, bias=False)
        self.to_v = nn.Linear(kv_dim, inner_dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner_dim, query_dim), nn.Dropout(dropout))
        self.save_attention = False
        self.last_attention: torch.Tensor | None = None
        self.fused = False

    def _split_heads(self, t: torch.Tensor) -> torch.Tensor:
        # [B, N, heads * dim_head] -> [B, heads, N, dim_head]
        b, n, _ = t.shape
        return t.reshape(b, n, self.heads, self.dim_head).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``x`` ``[B, N_q, query_dim]`` to ``context`` ``[B, N_c, context_dim]``.

        ``context`` is required when the layer was built with a ``context_dim`` and must be
        ``None`` otherwise (then ``x`` attends to itself).

        Returns:
            ``[B, N_q, query_dim]``; with ``return_attention=True`` also the attention
            probabilities ``[B, heads, N_q, N_c]`` (each row sums to 1).
        """
        if x.dim() != 3 or x.shape[-1] != self.query_dim:
            raise ValueError(f"x must have shape [B, N, {self.query_dim}], got {tuple(x.shape)}")
        if self.context_dim is None:
            if context is not None:
                raise ValueError(
                    "context must be None: this attention was built with context_dim=None "
                    f"(self-attention), got a context of shape {tuple(context.shape)}"
                )
            context = x
        else:
            if context is None:
                raise ValueError(f"context is required: expected shape [B, tokens, {self.context_dim}]")
            if context.dim() != 3 or context.shape[-1] != self.context_dim:
                raise ValueError(
                    f"context must have shape [B, tokens, {self.context_dim}] (context_dim="
                    f"{self.context_dim}), got {tuple(context.shape)}"
                )
            if context.shape[0] != x.shape[0]:
                raise ValueError(
                    f"context batch size {context.shape[0]} must equal the batch size of x ({x.shape[0]})"
                )

        # Q = x W_q, K = c W_k, V = c W_v, each split into heads: [B, heads, N, dim_head]
        q = self._split_heads(self.to_q(x))
        k = self._split_heads(self.to_k(context))
        v = self._split_heads(self.to_v(context))
        if self.fused and not (self.save_attention or return_attention):
            # the same softmax(Q K^T / sqrt(d_head)) V in one fused kernel, then merge the heads
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
            b, _, n, _ = out.shape
            return self.to_out(out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head))
        # sim[b, h, i, j] = q_i . k_j / sqrt(d_head): how well query i matches key j
        sim = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        # A = softmax over the keys: each query distributes a total weight of 1
        attn = sim.softmax(dim=-1)
        if self.save_attention:
            self.last_attention = attn.detach()
        # out_i = sum_j A_ij v_j, then merge heads: [B, heads, N_q, d] -> [B, N_q, heads * d]
        out = torch.matmul(attn, v)
        b, _, n, _ = out.shape
        out = out.transpose(1, 2).reshape(b, n, self.heads * self.dim_head)
        out = self.to_out(out)
        return (out, attn) if return_attention else out


class SelfAttention(CrossAttention):
    """Self-attention: :class:`CrossAttention` whose keys and values come from ``x`` itself."""

    def __init__(self, query_dim: int, heads: int = 4, dim_head: int = 16, dropout: float = 0.0) -> None:
        super().__init__(query_dim, context_dim=None, heads=heads, dim_head=dim_head, dropout=dropout)


class GEGLU(nn.Module):
    """Gated GELU (Shazeer, 2020): ``GEGLU(x) = (x W + b) * GELU(x V + c)``.

    One Linear produces both halves; the second half, through a GELU, gates the first.
    """

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        check_positive_int("dim_in", dim_in)
        check_positive_int("dim_out", dim_out)
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., dim_in]`` -> ``[..., dim_out]``."""
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """The transformer's position-wise MLP: GEGLU up to ``mult * dim``, dropout, Linear back to ``dim``."""

    def __init__(self, dim: int, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        check_positive_int("dim", dim)
        check_positive_int("mult", mult)
        inner_dim = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner_dim), nn.Dropout(dropout), nn.Linear(inner_dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[..., dim]`` -> ``[..., dim]``."""
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Self-attention, cross-attention and feed-forward, each pre-normed and residual:

        x = x + attn1(norm1(x))                 # tokens of the image talk to each other
        x = x + attn2(norm2(x), context)        # ... and read the prompt
        x = x + ff(norm3(x))                    # per-token MLP

    With ``context_dim=None`` ``attn2`` is a second self-attention (the unconditional U-Net).
    """

    def __init__(
        self, dim: int, heads: int, dim_head: int, dropout: float = 0.0, context_dim: int | None = None
    ) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, None, heads, dim_head, dropout)
        self.ff = FeedForward(dim, dropout=dropout)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head, dropout)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, N, dim]``, ``context`` ``[B, tokens, context_dim]`` or None -> ``[B, N, dim]``."""
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context=context)
        x = x + self.ff(self.norm3(x))
        return x


class SpatialTransformer(nn.Module):
    """Transformer blocks on a feature map: ``[B, C, H, W]`` -> ``H * W`` tokens -> ``[B, C, H, W]``.

        h = proj_in(GroupNorm(x))                    # 1x1 conv: C -> heads * dim_head
        h = reshape to [B, H*W, heads * dim_head]    # one token per pixel
        h = blocks(h, context)
        out = x + proj_out(reshape back to [B, inner, H, W])

    ``proj_out`` starts at zero, so at initialisation the whole block is the identity and the
    U-Net behaves like a plain convolutional one until attention learns something useful.

    Args:
        channels: channels C of the feature map.
        heads, dim_head: attention heads and their width (inner width ``heads * dim_head``).
        depth: number of :class:`BasicTransformerBlock` s.
        context_dim: width of the context tokens; ``None`` = no conditioning (all self-attention).
        dropout: dropout inside the blocks.
        norm_groups: groups of the input GroupNorm (must divide ``channels``).
        use_linear_projection: ``proj_in`` / ``proj_out`` as Linear layers applied to the tokens
            (SD 2.x) rather than 1x1 convolutions applied to the feature map (SD 1.x): the same
            per-pixel map, stored as ``[out, in]`` instead of ``[out, in, 1, 1]``.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        dim_head: int,
        depth: int = 1,
        context_dim: int | None = None,
        dropout: float = 0.0,
        norm_groups: int = 8,
        use_linear_projection: bool = False,
    ) -> None:
        super().__init__()
        check_positive_int("channels", channels)
        check_positive_int("depth", depth)
        check_positive_int("norm_groups", norm_groups)
        if channels % norm_groups:
            raise ValueError(f"norm_groups ({norm_groups}) must divide channels ({channels})")
        inner_dim = heads * dim_head
        self.channels = channels
        self.context_dim = context_dim
        self.use_linear_projection = use_linear_projection
        self.fused = False  # the fast path of use_fused_attention (see _tokens)
        self.norm = nn.GroupNorm(norm_groups, channels, eps=1e-6)
        if use_linear_projection:
            self.proj_in: nn.Module = nn.Linear(channels, inner_dim)
        else:
            self.proj_in = nn.Conv2d(channels, inner_dim, kernel_size=1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner_dim, heads, dim_head, dropout, context_dim) for _ in range(depth)]
        )
        if use_linear_projection:
            self.proj_out: nn.Module = nn.Linear(inner_dim, channels)
        else:
            self.proj_out = nn.Conv2d(inner_dim, channels, kernel_size=1)
        nn.init.zeros_(self.proj_out.weight)  # zero-init: the block starts as the identity
        nn.init.zeros_(self.proj_out.bias)

    def _tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, H*W, C]``; with ``fused`` (:func:`use_fused_attention`) copied into
        token-major order, which the Linear layers and LayerNorms of SD's 4096-token levels read faster."""
        x = x.flatten(2).transpose(1, 2)
        return x.contiguous() if self.fused else x

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, channels, H, W]``, ``context`` ``[B, tokens, context_dim]`` (or None) -> like ``x``."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape [B, {self.channels}, H, W], got {tuple(x.shape)}")
        b, _, h, w = x.shape
        x_in = x
        if self.use_linear_projection:  # SD 2.x: tokens first, then the Linear
            x = self.proj_in(self._tokens(self.norm(x)))
        else:
            # [B, inner, H, W] -> [B, H*W, inner]: each pixel becomes a token
            x = self._tokens(self.proj_in(self.norm(x)))
        for block in self.transformer_blocks:
            x = block(x, context=context)
        if self.use_linear_projection:
            x = self.proj_out(x)
        # [B, H*W, C] -> [B, C, H, W]
        x = x.transpose(1, 2).reshape(b, -1, h, w)
        return x + x_in if self.use_linear_projection else self.proj_out(x) + x_in


def use_fused_attention(model: nn.Module, fused: bool = True) -> nn.Module:
    """Switch every :class:`CrossAttention` in ``model`` (and the VAE's ``AttnBlock``, which has the
    same switch) to PyTorch's fused attention kernel, or back to the plain matmuls, and the
    SpatialTransformers' tokens to token-major memory; the same numbers up to float rounding, much
    less memory at SD's sizes. Returns ``model``."""
    fused = check_bool("fused", fused)
    for module in model.modules():
        if isinstance(module, CrossAttention) or isinstance(getattr(module, "fused", None), bool):
            module.fused = fused
    return model
