"""Looking inside a U-Net: parameter counts and a table of every block's output shape.

``count_parameters`` works on any module; ``describe_shapes`` and ``summary`` run one forward
pass of a :class:`minildm.nn.unet.UNetModel` on zeros and record what each block outputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from minildm.nn.unet import UNetModel


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _block_label(block: nn.Module) -> str:
    if isinstance(block, nn.Sequential):
        return " + ".join(type(layer).__name__ for layer in block)
    return type(block).__name__


def describe_shapes(
    model: UNetModel, x_shape: tuple[int, ...] | None = None, context_tokens: int = 8
) -> list[tuple[str, str, tuple[int, ...], int]]:
    """Run one forward pass on zeros and record each block's output.

    Args:
        model: the U-Net.
        x_shape: input shape ``(B, C, H, W)``; default ``(1, in_channels, image_size, image_size)``.
        context_tokens: number of context tokens to feed a conditional model.

    Returns:
        Rows ``(name, layers, output shape, parameters)`` in execution order: ``input_blocks.*``
        (going down), ``middle_block``, ``output_blocks.*`` (going up), ``out``.
    """
    cfg = model.config
    if x_shape is None:
        x_shape = (1, cfg.in_channels, cfg.image_size, cfg.image_size)
    if len(x_shape) != 4:
        raise ValueError(f"x_shape must be (B, C, H, W), got {x_shape!r}")
    param = next(model.parameters())
    x = torch.zeros(x_shape, device=param.device, dtype=param.dtype)
    context = None
    if cfg.context_dim is not None:
        context_shape = (x_shape[0], context_tokens, cfg.context_dim)
        context = torch.zeros(context_shape, device=param.device, dtype=param.dtype)
    named = [(f"input_blocks.{i}", b) for i, b in enumerate(model.input_blocks)]
    named += [("middle_block", model.middle_block)]
    named += [(f"output_blocks.{i}", b) for i, b in enumerate(model.output_blocks)]
    named += [("out", model.out)]
    rows: list[tuple[str, str, tuple[int, ...], int]] = []
    hooks = []
    for name, block in named:

        def hook(_module, _inputs, output, name=name, block=block):
            rows.append((name, _block_label(block), tuple(output.shape), count_parameters(block)))

        hooks.append(block.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(x, 0, context)
    finally:
        for handle in hooks:
            handle.remove()
        model.train(was_training)
    return rows


def summary(model: UNetModel, x_shape: tuple[int, ...] | None = None, context_tokens: int = 8) -> str:
    """A printable table of every block's output shape, going down and up, and the parameter count.

    ``print(summary(UNetModel()))`` shows the U-Net assembled layer by layer.
    """
    rows = describe_shapes(model, x_shape, context_tokens)
    headers = ("block", "layers", "output shape", "params")
    table = [(n, lay, "x".join(str(s) for s in shape), f"{p:,}") for n, lay, shape, p in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]

    def fmt(r: tuple[str, ...]) -> str:
        cells = zip(r, widths, strict=True)
        return "  ".join(c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(cells))

    lines = [fmt(headers), "  ".join("-" * w for w in widths)] + [fmt(r) for r in table]
    total, time_embed = count_parameters(model), count_parameters(model.time_embed)
    lines.append(f"total parameters: {total:,} (time_embed: {time_embed:,})")
    return "\n".join(lines)
