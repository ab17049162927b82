"""Prompts a shapes-world model can be asked: the caption grammar, checked before encoding.

A word-level tokenizer would encode "circle red a square blue" without complaint, and the model
would draw *something*: a silent guess. The text-to-image pipeline checks every prompt against
the grammar first (``strict=True``, the default) and refuses one outside it, saying what is
wrong and what the grammar is. ``strict=False`` lets any prompt of known words through, for
experiments.
"""

from __future__ import annotations

from minildm.data.captions import COLOURS, POSITIONS, RELATIONS, SHAPES, SIZES, parse_caption

GRAMMAR = (
    f"one object 'a [{'|'.join(SIZES)}] [{'|'.join(COLOURS)}] {'|'.join(SHAPES)} "
    f"[in the {'|'.join(POSITIONS)}]', two objects 'a [colour] shape {'|'.join(RELATIONS)} "
    "a [colour] shape' (no size or position), or '' for the unconditional model"
)


def object_phrases(caption: str) -> list[str]:
    """The one-object phrase of each object of a two-object caption (``"a yellow circle"``); ``[]``
    for a one-object caption, whose only phrase is the caption itself (lesson 10's composable guidance)."""
    spec = parse_caption(caption)
    if len(spec.objects) < 2:
        return []
    return [" ".join(["a", *([o.colour] if o.colour else []), o.shape]) for o in spec.objects]


def check_prompts(prompts: list[str]) -> None:
    """Refuse a prompt outside the caption grammar with a ValueError naming the prompt, what is
    wrong, and the grammar. The empty prompt (the unconditional model) is allowed."""
    for prompt in prompts:
        if prompt == "":
            continue
        try:
            parse_caption(prompt)
        except ValueError as err:
            hint = f"Prompts follow the grammar: {GRAMMAR} (strict=False to pass it anyway)"
            raise ValueError(f"{err}. {hint}") from None
