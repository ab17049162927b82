r"""Classifier-free guidance (Ho & Salimans, 2022), written once: :class:`CFGDenoiser` wraps a noise
network and its conditioning into a *denoiser*, a function of $(x_t, t)$ alone, which the sampling
loop (:mod:`minildm.sampling`), the pipelines and lesson 11's distillation teacher all call.

    out = eps(x_t, t, uncond) + s * (eps(x_t, t, cond) - eps(x_t, t, uncond))

The conditional and unconditional passes run as one doubled batch, ``[uncond, cond]``. Scale
$s = 1$ (or no ``uncond``) is the plain conditional model: one pass, no doubled batch.

Composable guidance (Liu et al., 2022; lesson 10) adds one guided term per extra condition $c_i$
with weight $w_i$: ``out += w_i * (eps(x_t, t, c_i) - eps(x_t, t, uncond))``, all in the same batch
(:class:`~minildm.pipelines.composable.ComposableGuidance` builds the terms from a prompt's phrases).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from minildm.validation import check_number

#: what the sampling loop calls: denoiser(x_t, t) -> output of x_t's shape (eps, v or x0), with
#: ``t`` a tensor [B] of timesteps; a noise network whose context defaults to None is one (unconditional)
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_guidance_scale(guidance_scale: float) -> float:
    """Classifier-free guidance's scale s: a number >= 1 (1 means no guidance), as a float."""
    # NumPy's numbers too (np.float32(7.5))
    return check_number("guidance_scale", guidance_scale, low=1.0, hint="1 means no guidance; SD uses 7.5")


class CFGDenoiser(nn.Module):
    """``CFGDenoiser(net, cond, uncond, scale)(x_t, t)``: the network's output, guided.

    ``cond`` and ``uncond`` are contexts of batch 1 or of x's batch (the empty prompt's, of batch 1,
    is broadcast); ``terms`` are composable guidance's extra ``(context, weight)`` pairs, a weight
    being a number or a tensor [B] (one per sample). ``net_kwargs`` go to every network call
    unchanged (conditioning that does not depend on the batch). ``uncond_first=False`` orders the
    doubled batch ``[cond, uncond]`` (the distillation teacher's order). The scale is checked here,
    once, not at every step."""

    def __init__(
        self,
        net: Callable[..., torch.Tensor],
        cond: torch.Tensor | None = None,
        uncond: torch.Tensor | None = None,
        scale: float = 1.0,
        terms: Sequence[tuple[torch.Tensor, float | torch.Tensor]] = (),
        uncond_first: bool = True,
        **net_kwargs,
    ) -> None:
        super().__init__()
        self.net, self.cond, self.uncond = net, cond, uncond
        self.scale = check_guidance_scale(scale)
        self.terms, self.uncond_first, self.net_kwargs = list(terms), uncond_first, net_kwargs
        if self.guided and cond is None:
            raise ValueError("cond must be given along with uncond for classifier-free guidance")
        if self.terms and uncond is None:
            raise ValueError("composable guidance's terms need uncond (the empty prompt's context)")

    @property
    def guided(self) -> bool:
        """True when a call runs the doubled batch (an ``uncond`` and a scale > 1, or extra terms)."""
        return self.uncond is not None and (self.scale != 1.0 or bool(self.terms))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not self.guided:
            return self.net(x, t, self.cond, **self.net_kwargs)
        batch = x.shape[0]
        contexts = [self.uncond, self.cond, *(context for context, _ in self.terms)]
        for name, context in zip(("uncond", "cond"), contexts):
            if context.shape[0] not in (1, batch):
                raise ValueError(f"{name} must have batch size 1 or {batch}, got {context.shape[0]}")
        uncond, cond, *extra = (c.expand(batch, *c.shape[1:]) for c in contexts)
        n = 2 + len(extra)
        first, second = (uncond, cond) if self.uncond_first else (cond, uncond)
        out = self.net(torch.cat([x] * n), torch.cat([t] * n), torch.cat([first, second, *extra]),
                       **self.net_kwargs).chunk(n)
        out_first, out_second = out[0], out[1]
        out_uncond, out_cond = (out_first, out_second) if self.uncond_first else (out_second, out_first)
        # $\hat\epsilon = \epsilon_\theta(x_t, \varnothing)
        #   + s\,(\epsilon_\theta(x_t, c) - \epsilon_\theta(x_t, \varnothing))$
        guided = out_uncond + self.scale * (out_cond - out_uncond)
        for (_, weight), out_i in zip(self.terms, out[2:]):
            # ... $+ w_i\,(\epsilon_\theta(x_t, c_i) - \epsilon_\theta(x_t, \varnothing))$ (composable)
            if isinstance(weight, torch.Tensor):
                weight = weight.to(guided).reshape(-1, *[1] * (x.ndim - 1))
            guided = guided + weight * (out_i - out_uncond)
        return guided
