"""Why a prompt failed, in the words of the composition literature (lesson 10): the judge says *that*
an image misses its caption; :func:`failure_type` says *how*, from the objects it detected.

The types, checked in this order (the first that applies names the failure):

- ``wrong count``: not as many objects as the caption names (two merged into one, one missing, a
  speck of a third);
- ``colour blend``: in a two-object scene, an object's colour is off the palette with a hue *between*
  the two named colours' hues (salmon for magenta and yellow): the two colour words mixed;
- ``off-palette colour``: an object's colour is none of the palette's (orange, violet, mint, ...);
- ``colour leak``: two objects of *different* named colours drawn in one of them (the "magenta circle
  to the right of a yellow circle" drawn as two magenta circles): one colour word took both objects;
- ``attribute swap``: the right colours and the right shapes, bound to the wrong objects (a red square
  and a blue circle for "a red circle ... a blue square");
- ``wrong shape``, ``wrong colour``: one object's shape (or colour) is not the one named, otherwise;
- ``wrong relation``: both objects right, in the wrong places relative to each other.

When the two named objects share a shape ("a blue circle above a green circle") the objects are told
apart by their colours, and when they share a colour by their shapes: a blue and a green circle drawn
the wrong way round are a wrong relation, not a wrong colour (the judge's verdict is the same either
way; only the name of the failure depends on which object is taken for which);
- ``wrong size`` / ``wrong position``: one-object captions that name them.
"""

from __future__ import annotations

from collections import Counter

from minildm.data.captions import HELDOUT_PAIRS, RELATIONS, CaptionSpec, parse_caption
from minildm.metrics.judge import OFF_PALETTE, DetectedObject, Judgement
from minildm.metrics.judge import PALETTE_HUE_DEGREES as PALETTE_HUES
from minildm.metrics.prompts import prompt_set
from minildm.metrics.stats import wilson_interval

#: the report rows of a composition measurement
COMPOSITION_KINDS = ("one", "two", "heldout one", "heldout two")

FAILURE_TYPES = (
    "wrong count", "colour blend", "off-palette colour", "colour leak", "attribute swap", "wrong shape",
    "wrong colour", "wrong relation", "wrong size", "wrong position",
)


def hue_between(hue: float, a: float, b: float) -> bool:
    """Whether ``hue`` lies on the shorter arc of the hue circle from ``a`` to ``b`` (degrees)."""
    span = (b - a) % 360.0
    if span > 180.0:
        a, span = b, 360.0 - span
    return (hue - a) % 360.0 <= span


def relation_holds(first: DetectedObject, second: DetectedObject, relation: str) -> bool:
    """Whether ``first`` is ``relation`` ``second`` (centres compared along the relation's axis)."""
    axis, sign = RELATIONS[relation]
    a, b = (first.cx, second.cx) if axis == 0 else (first.cy, second.cy)
    return (a - b) * sign > 0


def matched_pair(spec: CaptionSpec, objects: list[DetectedObject]) -> tuple[DetectedObject, ...] | None:
    """The two detected objects in the caption's order, told apart by colour when the two named objects
    share a shape and by shape when they share a colour; ``None`` when the names do not tell them apart
    (nothing shared, or the telling attribute is not drawn once each)."""
    if len(spec.objects) != 2 or len(objects) != 2:
        return None
    a, b = spec.objects
    if a.shape == b.shape and a.colour is not None and b.colour is not None and a.colour != b.colour:
        key = "colour"
    elif a.colour is not None and a.colour == b.colour and a.shape != b.shape:
        key = "shape"
    else:
        return None
    order = []
    for named in (a, b):
        found = [o for o in objects if getattr(o, key) == getattr(named, key)]
        if len(found) != 1:
            return None
        order.append(found[0])
    return tuple(order)


def failure_type(verdict: Judgement) -> str | None:
    """``None`` when the image passed, else the first of :data:`FAILURE_TYPES` that describes it."""
    if verdict.ok:
        return None
    spec = parse_caption(verdict.caption)
    objects = verdict.objects
    if not verdict.checks.get("count", True):
        return "wrong count"
    off = [o for o in objects if o.colour == OFF_PALETTE]
    named = [o.colour for o in spec.objects]
    two_colours = len(named) == 2 and None not in named and named[0] != named[1]
    if off and two_colours:
        if any(hue_between(o.hue, PALETTE_HUES[named[0]], PALETTE_HUES[named[1]]) for o in off):
            return "colour blend"
    if off:
        return "off-palette colour"
    if len(spec.objects) == 2:
        drawn = sorted(o.colour for o in objects)
        if two_colours and drawn[0] == drawn[1] and drawn[0] in named:
            return "colour leak"
        wanted, got = [o.pair for o in spec.objects], [(o.colour, o.shape) for o in objects]
        same_colours = Counter(c for c, _ in got) == Counter(c for c, _ in wanted)
        same_shapes = Counter(s for _, s in got) == Counter(s for _, s in wanted)
        if same_colours and same_shapes and Counter(got) != Counter(wanted):
            return "attribute swap"
        pair = matched_pair(spec, objects)
        if pair is not None:
            for attribute in ("shape", "colour"):
                if any(getattr(o, attribute) != getattr(s, attribute) for o, s in zip(pair, spec.objects)):
                    return f"wrong {attribute}"
            if spec.relation is not None and not relation_holds(*pair, spec.relation):
                return "wrong relation"
    for attribute in ("shape", "colour", "relation", "size", "position"):
        if not verdict.checks.get(attribute, True):
            return f"wrong {attribute}"
    return "wrong count"  # unreachable for the judge's verdicts: every failed check is named above


def failure_table(verdicts: list[Judgement]) -> dict[str, dict]:
    """``{type: {"n", "count", "rate", "low", "high"}}`` over every verdict (the rate of each failure
    type among all images, with its 95% Wilson interval), plus ``"passed"``."""
    counts = Counter(failure_type(v) for v in verdicts)
    n = len(verdicts)
    table = {}
    for name, key in (("passed", None), *((t, t) for t in FAILURE_TYPES)):
        low, high = wilson_interval(counts.get(key, 0), n)
        table[name] = {"n": n, "count": counts.get(key, 0), "rate": counts.get(key, 0) / max(n, 1),
                       "low": low, "high": high}
    return table


def composition_prompts(n: int, seed: int = 0) -> dict[str, list[str]]:
    """``n`` prompts of each of :data:`COMPOSITION_KINDS`: one object, two objects (seen pairs), and
    held-out prompts (a colour-shape pair never seen in training) split by their number of objects;
    the fixed seeded sets of :mod:`minildm.metrics.prompts`."""
    heldout = prompt_set("heldout", 4 * n, seed=seed)
    by_count = {k: [p for p in heldout if parse_caption(p).kind == k][:n] for k in ("one", "two")}
    return {"one": prompt_set("one", n, seed=seed), "two": prompt_set("two", n, seed=seed),
            "heldout one": by_count["one"], "heldout two": by_count["two"]}


def heldout_pair_rates(verdicts: list[Judgement]) -> dict[tuple[str, str], dict[str, float]]:
    """For each held-out pair: ``{"alone": rate, "in two": rate, "n alone": n, "n in two": n}``, the pass
    rate of the one-object prompts that name it and of the two-object prompts that contain it."""
    rows = {}
    for pair in sorted(HELDOUT_PAIRS):
        groups = {"alone": [], "in two": []}
        for v in verdicts:
            spec = parse_caption(v.caption)
            if pair in {o.pair for o in spec.objects}:
                groups["alone" if spec.kind == "one" else "in two"].append(v.ok)
        rows[pair] = {}
        for name, oks in groups.items():
            rows[pair][name] = sum(oks) / len(oks) if oks else float("nan")
            rows[pair][f"n {name}"] = len(oks)
    return rows
