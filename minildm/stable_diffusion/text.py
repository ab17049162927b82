"""SD's text encoder: transformers' ``CLIPTextModel`` and ``CLIPTokenizer``, read as SD reads them.

The same :class:`~minildm.text.TextEncoder` as lesson 06, with SD's two habits:

- no attention mask: SD's ``FrozenCLIPEmbedder`` (and diffusers' pipeline) give CLIP the ids alone, so
  the padding positions attend to the padding before them (only CLIP's causal mask applies). The U-Net
  was trained on those vectors, padding included. A text encoder whose ``config.json`` sets
  ``use_attention_mask`` (diffusers' switch; our saved shapes-world models do) gets its mask.
- a prompt longer than 77 tokens is cut at 77 with a warning, as diffusers does (our word-level
  tokenizer keeps refusing a prompt outside its grammar).

SD 2.x reads CLIP's penultimate layer. A diffusers folder has already dropped the last layer
(``num_hidden_layers`` 23 of OpenCLIP's 24), so its ``last_hidden_state`` is that layer; an original
single-file 2.x checkpoint keeps all 24, read with ``clip_skip = 1`` (LN(h_{L-1})).
"""

from __future__ import annotations

import warnings

import torch

from minildm.text import TextEncoder, is_word_level
from minildm.text.tokenizer import _check_prompts


def _short(text: str, most: int = 40) -> str:
    """``text``, or its start and "..." when it is longer than ``most`` characters."""
    return text if len(text) <= most else text[: most - 3] + "..."


class SDTextEncoder(TextEncoder):
    """A :class:`TextEncoder` that encodes as Stable Diffusion does (see the module docstring)."""

    @property
    def use_attention_mask(self) -> bool:
        """diffusers' ``text_encoder.config.use_attention_mask``: False for SD."""
        return bool(getattr(self.text_model.config, "use_attention_mask", False))

    def tokenize(self, prompts: str | list[str]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` [B, 77]; a longer prompt is cut at 77 tokens with a
        warning naming it and how many tokens it loses (our word-level tokenizer: its own checks, as in
        lesson 06)."""
        if is_word_level(self.tokenizer):
            return super().tokenize(prompts)
        prompts = _check_prompts(prompts)
        n = self.max_length
        untruncated = self.tokenizer(prompts, truncation=False, verbose=False)["input_ids"]
        for prompt, ids in zip(prompts, untruncated):
            if len(ids) > n:  # (the start token, the prompt's, the end token: n - 2 of the prompt's kept)
                dropped = self.tokenizer.decode(ids[n - 1 : -1]).strip()
                warnings.warn(f"CLIP reads at most {n} tokens: the prompt {_short(prompt)!r} has {len(ids)}, "
                              f"its last {len(ids) - n} are dropped ({_short(dropped)!r})", stacklevel=3)
        enc = self.tokenizer(
            prompts, padding="max_length", max_length=n, truncation=True, return_tensors="pt"
        )
        return {k: enc[k].long().to(self.device) for k in ("input_ids", "attention_mask")}

    def forward(self, prompts: str | list[str]) -> torch.Tensor:
        """Prompts -> context [B, 77, width] (SD 1.x: 768, 2.x: 1024), without an attention mask."""
        tokens = self.tokenize(prompts)
        mask = tokens["attention_mask"] if self.use_attention_mask else None
        return self.encode_ids(tokens["input_ids"], mask)
