"""One family of argument checks for all of minildm.

Every public function of minildm checks its arguments where it is entered (not inside a loop
over steps) with these helpers. Each one returns the value normalised (a Python ``int``,
``float`` or ``bool``: NumPy's numbers become Python's) or raises a one-line ``ValueError``
that names the argument and says what was expected::

    >>> check_int("num_inference_steps", np.int64(50), low=1, high=1000)
    50
    >>> check_probability("omit_prob", 1.5)
    Traceback (most recent call last):
    ValueError: omit_prob must be a number in [0, 1], got 1.5

The rules shared by all of them:

* ``True`` and ``False`` are not numbers here (Python says ``True == 1``; a learner who passes
  ``steps=True`` made a mistake);
* NumPy's integers and floats are numbers (``np.int64(3)``, ``np.float32(0.5)``: what indexing
  an array gives);
* NaN and infinity are refused unless ``finite=False`` (a NaN compares false with everything, so
  a bound alone would let it through or give a confusing message);
* ``optional=True`` also accepts ``None`` (returned as is) and says "or None" in the message;
* ``hint`` adds a reason in brackets: ``"... must be an int >= 12 (10 words + BOS + EOS), got 3"``.

No PyTorch here, so any module (the data generators, the command line) can use it cheaply.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

MAX_SEED = 2**63 - 1  # the largest seed torch.Generator.manual_seed takes


def is_int(value: object) -> bool:
    """An integer, Python's or NumPy's (``np.int64(3)``), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real_number(value: object) -> bool:
    """An int or float, Python's or NumPy's (``np.float32(0.5)``, ``np.int64(3)``), not a bool."""
    numeric = isinstance(value, (int, float, np.integer, np.floating))
    return numeric and not isinstance(value, (bool, np.bool_))


def is_positive_int(value: object) -> bool:
    """An ``int`` >= 1 (``True`` is not one, nor is ``2.0``)."""
    return is_int(value) and value >= 1


def _fail(name: str, expected: str, value: object, hint: str | None, optional: bool) -> ValueError:
    """The one message format: ``<name> must be <expected>[ (hint)][ or None], got <value!r>``."""
    extra = f" ({hint})" if hint else ""
    none = " or None" if optional else ""
    return ValueError(f"{name} must be {expected}{extra}{none}, got {value!r}")


def _bound(x: float) -> str:
    """A bound as a reader writes it: ``1`` not ``1.0``, ``0.5`` as is."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(float(x))


def _describe(noun: str, low, high, low_open: bool, high_open: bool, finite: bool) -> str:
    """``"a number in [0, 1)"``, ``"a positive int"``, ``"a finite number >= 0"``, ..."""
    article = "an" if noun[0] in "aeiou" else "a"
    if low is not None and high is not None:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        return f"{article} {noun} in {left}{_bound(low)}, {_bound(high)}{right}"
    fin = "finite " if finite and noun == "number" else ""
    if low is not None and low == 0:
        if low_open:
            return f"a positive {fin}{noun}"
        return f"a non-negative {noun}" if noun == "int" else f"a {fin}{noun} >= 0"
    if noun == "int" and low == 1 and not low_open:
        return "a positive int"
    article = "an" if (fin or noun)[0] in "aeiou" else "a"
    if low is not None:
        return f"{article} {fin}{noun} {'>' if low_open else '>='} {_bound(low)}"
    if high is not None:
        return f"{article} {fin}{noun} {'<' if high_open else '<='} {_bound(high)}"
    return f"{article} {fin}{noun}"


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
    optional: bool = False,
    hint: str | None = None,
    noun: str = "number",
) -> float | None:
    """``value`` as a float if it is a real number within the bounds (``low <= value <= high``;
    ``low_open`` / ``high_open`` make that ``<``), finite unless ``finite=False``; else a
    ValueError naming ``name``. ``noun`` is the word the message uses ("number", "float")."""
    if optional and value is None:
        return None
    ok = is_real_number(value)
    if ok:
        x = float(value)
        ok = not math.isnan(x) and (math.isfinite(x) or not finite)
        if ok and low is not None:
            ok = x > low if low_open else x >= low
        if ok and high is not None:
            ok = x < high if high_open else x <= high
    if not ok:
        raise _fail(name, _describe(noun, low, high, low_open, high_open, finite), value, hint, optional)
    return x


def check_int(
    name: str,
    value: object,
    *,
    low: int | None = None,
    high: int | None = None,
    optional: bool = False,
    hint: str | None = None,
) -> int | None:
    """``value`` as a Python int if it is an integer (NumPy's too; not a bool, not ``2.0``) in
    ``[low, high]`` (either bound may be left out); else a ValueError naming ``name``."""
    if optional and value is None:
        return None
    if not is_int(value) or (low is not None and value < low) or (high is not None and value > high):
        raise _fail(name, _describe("int", low, high, False, False, True), value, hint, optional)
    return int(value)


def check_positive_int(name: str, value: object, *, optional: bool = False, hint: str | None = None) -> int:
    """``value`` if it is an int >= 1, else a ValueError naming ``name``: every "how many"
    argument of minildm (steps, batch sizes, widths) goes through here."""
    return check_int(name, value, low=1, optional=optional, hint=hint)


def check_positive_number(
    name: str, value: object, *, optional: bool = False, hint: str | None = None
) -> float:
    """``value`` as a float if it is a finite number > 0 (learning rates, scales, epsilons)."""
    return check_number(name, value, low=0, low_open=True, optional=optional, hint=hint)


def check_probability(
    name: str, value: object, *, low_open: bool = False, high_open: bool = False, hint: str | None = None
) -> float:
    """``value`` as a float if it is a number in [0, 1] (fractions, probabilities, decays);
    ``low_open`` / ``high_open`` leave out 0 or 1, e.g. ``[0, 1)`` for a dropout rate."""
    return check_number(name, value, low=0, high=1, low_open=low_open, high_open=high_open, hint=hint)


def check_bool(name: str, value: object, *, hint: str | None = None) -> bool:
    """``value`` if it is ``True`` or ``False`` (NumPy's ``np.True_`` too), not ``1`` or ``"yes"``."""
    if not isinstance(value, (bool, np.bool_)):
        raise _fail(name, "True or False", value, hint, False)
    return bool(value)


def check_seed(name: str, seed: object) -> int:
    """One rule for every seed in minildm (CLI, pipelines, data, training): an int in
    [0, 2**63 - 1] (NumPy's integers too, returned as a Python int: ``random.seed`` refuses them)."""
    if not isinstance(name, str):  # (a seed given first, the name second)
        raise TypeError(f"check_seed(name, seed) takes the argument's name first, got {name!r}")
    if not is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise _fail(name, "an int in [0, 2**63 - 1]", seed, None, False)
    return int(seed)


def check_int_tuple(
    name: str, values: object, *, low: int = 1, length: int | None = None, hint: str | None = None
) -> tuple[int, ...]:
    """``values`` as a tuple of Python ints if it is a non-empty tuple or list of ints >= ``low``
    (of ``length`` items, if given): shapes, channel multipliers, per-level settings."""
    ok = isinstance(values, (tuple, list)) and len(values) > 0 and (length is None or len(values) == length)
    if not (ok and all(is_int(v) and v >= low for v in values)):
        each = {0: "non-negative ints", 1: "positive ints"}.get(low, f"ints >= {low}")
        count = "non-empty tuple of" if length is None else f"tuple of {length}"
        raise _fail(name, f"a {count} {each}", values, hint, False)
    return tuple(int(v) for v in values)


def check_choice(name: str, value: object, choices: Iterable, *, hint: str | None = None) -> object:
    """``value`` if it is one of ``choices`` (a bool never stands for 0 or 1 here), else a
    ValueError listing them: ``split must be one of ('train', 'val'), got 'test'``."""
    choices = tuple(choices)
    for choice in choices:
        same_kind = isinstance(choice, (bool, np.bool_)) == isinstance(value, (bool, np.bool_))
        try:
            if same_kind and bool(choice == value):
                return choice if isinstance(value, np.generic) else value
        except (TypeError, ValueError):  # e.g. an array compared with a str
            continue
    raise _fail(name, f"one of {choices}", value, hint, False)
