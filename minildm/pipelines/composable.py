r"""Composable guidance (Liu et al., 2022, "Compositional Visual Generation with Composable Diffusion
Models"): one guided term per object phrase, added to classifier-free guidance of the whole prompt.

For "a magenta circle to the right of a yellow circle" the phrases are "a magenta circle" and
"a yellow circle", and the noise prediction becomes

$$\hat\epsilon = \epsilon(z_t, \varnothing) + s\,[\epsilon(z_t, c) - \epsilon(z_t, \varnothing)]
  + s_p \sum_i [\epsilon(z_t, c_i) - \epsilon(z_t, \varnothing)]$$

with $c$ the whole prompt (it alone knows the relation, "to the right of"), $c_i$ the phrase of
object $i$ and $s_p$ the phrase scale. Liu et al. read each term as the score of one condition: a
sum of scores is the score of a product of distributions, an image that every phrase describes.
One-object prompts have no phrases beyond themselves and get plain guidance. The price: one more
U-Net pass per phrase and step, twice the work of classifier-free guidance for two objects.
"""

from __future__ import annotations

import torch
from torch import nn

from minildm.guidance import CFGDenoiser
from minildm.text.grammar import object_phrases
from minildm.validation import check_number

__all__ = ["ComposableGuidance", "check_phrase_scale", "object_phrases", "phrase_contexts"]


def check_phrase_scale(phrase_scale: object) -> float:
    """``phrase_scale`` as a float >= 0 (0: plain classifier-free guidance)."""
    return check_number("phrase_guidance", phrase_scale, low=0.0)


class ComposableGuidance(CFGDenoiser):
    """The :class:`~minildm.guidance.CFGDenoiser` whose ``(z_t, t)`` call returns the composed
    prediction above: classifier-free guidance of the whole prompt plus one term per phrase, each
    weighted ``phrase_scale`` times its 0/1 weight (all in one batch, even at scale 1).

    ``phrases`` ``[K, B, tokens, width]``: phrase k of every prompt, ``weights`` ``[K, B]``: 1 where
    prompt b has a k-th phrase, else 0 (its slot holds the empty prompt and adds nothing)."""

    def __init__(
        self,
        net: nn.Module,
        cond: torch.Tensor,
        uncond: torch.Tensor,
        phrases: torch.Tensor,
        weights: torch.Tensor,
        guidance_scale: float,
        phrase_scale: float,
    ) -> None:
        self.phrase_scale = check_phrase_scale(phrase_scale)
        terms = [(phrases[i], self.phrase_scale * weights[i]) for i in range(phrases.shape[0])]
        super().__init__(net, cond, uncond, guidance_scale, terms=terms)

    @property
    def guided(self) -> bool:
        return True  # (the composed batch even when the scale is 1 and no prompt has phrases)


def phrase_contexts(
    encode, prompts: list[str], empty: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(phrases [K, B, tokens, width], weights [K, B])`` for :class:`ComposableGuidance`, with
    ``encode(list_of_prompts)`` the pipeline's text encoder and ``empty`` the empty prompt's context."""
    per_prompt = [object_phrases(p) for p in prompts]
    k = max((len(p) for p in per_prompt), default=0)
    if k == 0:
        return empty.new_zeros((0, len(prompts), *empty.shape[1:])), empty.new_zeros((0, len(prompts)))
    slots, weights = [], []
    for i in range(k):
        texts = [p[i] if i < len(p) else "" for p in per_prompt]
        slots.append(encode(texts))
        weights.append(torch.tensor([1.0 if i < len(p) else 0.0 for p in per_prompt]))
    return torch.stack(slots), torch.stack(weights)
