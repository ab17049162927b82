"""minildm.validation: the one family of argument checks. Each returns the normalised value
(Python numbers, NumPy's accepted) or raises a one-line ValueError naming the argument."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from minildm import utils
from minildm.validation import (
    MAX_SEED,
    check_bool,
    check_choice,
    check_int,
    check_int_tuple,
    check_number,
    check_positive_int,
    check_positive_number,
    check_probability,
    check_seed,
    is_int,
    is_real_number,
)

NAN, INF = float("nan"), float("inf")


def raises(match: str):
    """A ValueError whose one-line message matches ``match`` (a plain string, not a regex)."""
    return pytest.raises(ValueError, match="^" + re.escape(match) + "$")


def test_numbers_numpy_accepted_returned_as_python():
    for value in (0.5, np.float32(0.5), np.float64(0.5), np.float16(0.5)):
        out = check_number("x", value)
        assert out == 0.5 and type(out) is float
    for value in (3, np.int8(3), np.int64(3), np.uint64(3)):
        out = check_int("n", value)
        assert out == 3 and type(out) is int
    assert type(check_number("x", np.int64(2))) is float  # an int is a number too


@pytest.mark.parametrize("bad", [True, False, np.True_, "1", None, [1], 1 + 0j])
def test_bools_and_non_numbers_refused(bad):
    with pytest.raises(ValueError, match="^x must be a finite number, got "):
        check_number("x", bad)
    with pytest.raises(ValueError, match="^n must be an int, got "):
        check_int("n", bad)
    assert not is_real_number(bad) and not is_int(bad)


def test_floats_are_not_ints():
    with raises("n must be an int, got 2.0"):
        check_int("n", 2.0)
    with raises("steps must be a positive int, got np.float64(3.0)"):
        check_positive_int("steps", np.float64(3.0))


@pytest.mark.parametrize("bad", [NAN, INF, -INF, np.float32("nan"), np.float64("inf")])
def test_nan_and_inf_refused_unless_asked(bad):
    with pytest.raises(ValueError, match="^lr must be a finite number, got "):
        check_number("lr", bad)
    with pytest.raises(ValueError, match=r"^p must be a number in \[0, 1\], got "):
        check_probability("p", bad)
    if not math.isnan(bad):
        assert check_number("lr", bad, finite=False) == float(bad)
    else:  # NaN is never a number in range, even with finite=False
        with raises(f"lr must be a number, got {bad!r}"):
            check_number("lr", bad, finite=False)


def test_bounds_closed_and_open():
    assert check_number("x", 0, low=0) == 0.0 and check_number("x", 1, high=1) == 1.0
    with raises("x must be a positive finite number, got 0"):
        check_number("x", 0, low=0, low_open=True)
    with raises("x must be a finite number >= 0, got -0.5"):
        check_number("x", -0.5, low=0)
    with raises("x must be a finite number > 2, got 2"):
        check_number("x", 2, low=2, low_open=True)
    with raises("x must be a finite number <= 1, got 1.5"):
        check_number("x", 1.5, high=1)
    with raises("x must be a finite number < 1, got 1"):
        check_number("x", 1, high=1, high_open=True)
    with raises("x must be a number in (0, 1], got 0.0"):
        check_number("x", 0.0, low=0, high=1, low_open=True)
    with raises("x must be a number in [0.5, 2.5), got 2.5"):
        check_number("x", 2.5, low=0.5, high=2.5, high_open=True)
    assert check_number("x", 0.999, low=0, high=1, high_open=True) == 0.999


def test_int_bounds():
    assert check_int("k", 0, low=0) == 0 and check_int("k", np.int32(7), low=1, high=7) == 7
    with raises("k must be a non-negative int, got -1"):
        check_int("k", -1, low=0)
    with raises("k must be an int in [1, 1000], got 1001"):
        check_int("k", 1001, low=1, high=1000)
    with raises("max_length must be an int >= 12 (10 words + BOS + EOS), got 11"):
        check_int("max_length", 11, low=12, hint="10 words + BOS + EOS")
    with raises("k must be an int <= 3, got 4"):
        check_int("k", 4, high=3)


def test_positive_int_and_number():
    assert check_positive_int("batch_size", np.int64(4)) == 4
    with raises("batch_size must be a positive int, got 0"):
        check_positive_int("batch_size", 0)
    with raises("batch_size must be a positive int, got True"):
        check_positive_int("batch_size", True)
    assert check_positive_int("context_dim", None, optional=True) is None
    with raises("context_dim must be a positive int or None, got 0"):
        check_positive_int("context_dim", 0, optional=True)
    assert check_positive_number("lr", np.float32(0.25)) == 0.25
    with raises("lr must be a positive finite number, got inf"):
        check_positive_number("lr", INF)
    with raises("lr must be a positive finite number, got -1"):
        check_positive_number("lr", -1)


def test_probability_open_and_closed():
    assert check_probability("p", 0) == 0.0 and check_probability("p", np.float32(1.0)) == 1.0
    with raises("p must be a number in [0, 1], got 1.5"):
        check_probability("p", 1.5)
    with raises("dropout must be a number in [0, 1), got 1.0"):
        check_probability("dropout", 1.0, high_open=True)
    with raises("p must be a number in (0, 1], got 0"):
        check_probability("p", 0, low_open=True)
    with raises("p must be a number in [0, 1] (a quantile), got '0.5'"):
        check_probability("p", "0.5", hint="a quantile")


def test_bool():
    assert check_bool("flag", True) is True and check_bool("flag", np.False_) is False
    for bad in (1, 0, "yes", None, 1.0):
        with raises(f"flag must be True or False, got {bad!r}"):
            check_bool("flag", bad)


def test_seed_rule_and_message():
    assert check_seed("seed", 0) == 0 and check_seed("seed", MAX_SEED) == 2**63 - 1
    out = check_seed("seed", np.uint64(2**63 - 1))
    assert out == MAX_SEED and type(out) is int
    for bad in (-1, 2**63, True, 1.5, "3", None, np.int64(-1)):
        with raises(f"seed must be an int in [0, 2**63 - 1], got {bad!r}"):
            check_seed("seed", bad)
    with raises("--seed must be an int in [0, 2**63 - 1], got -1"):
        check_seed("--seed", -1)
    with pytest.raises(TypeError, match="name first"):  # the older order, seed first, is caught
        check_seed(3, "seed")
    assert not hasattr(utils, "check_seed")  # one rule, one signature: minildm.validation's


def test_choice():
    assert check_choice("split", "val", ("train", "val")) == "val"
    with raises("split must be one of ('train', 'val'), got 'test'"):
        check_choice("split", "test", ("train", "val"))
    assert check_choice("padding", np.int64(1), (1, 0)) == 1  # a NumPy int picks the Python choice
    with raises("padding must be one of (1, 0), got True"):  # True == 1, but a bool is not a 1
        check_choice("padding", True, (1, 0))
    with raises("x must be one of ('a',), got ['a']"):  # unhashable values compare, not crash
        check_choice("x", ["a"], ["a"])
    assert check_choice("x", np.array(1), (1,)) == 1


def test_int_tuple():
    assert check_int_tuple("ch_mult", [1, np.int64(2)]) == (1, 2)
    with raises("ch_mult must be a non-empty tuple of positive ints, got ()"):
        check_int_tuple("ch_mult", ())
    with raises("ch_mult must be a non-empty tuple of positive ints, got (1, True)"):
        check_int_tuple("ch_mult", (1, True))
    with raises("image_shape must be a tuple of 3 positive ints (C, H, W), got (3, 32)"):
        check_int_tuple("image_shape", (3, 32), length=3, hint="C, H, W")
    with raises("levels must be a non-empty tuple of non-negative ints, got '01'"):
        check_int_tuple("levels", "01", low=0)


def test_messages_are_one_line_and_name_the_argument():
    calls = [
        lambda: check_number("alpha", "x\ny"),
        lambda: check_int("beta", 1.5),
        lambda: check_probability("gamma", 2),
        lambda: check_bool("delta", 2),
        lambda: check_seed("epsilon", -5),
        lambda: check_choice("zeta", "q", ("a", "b")),
        lambda: check_int_tuple("eta", [0]),
    ]
    for name, call in zip(("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"), calls):
        with pytest.raises(ValueError) as err:
            call()
        message = str(err.value)
        assert message.startswith(f"{name} must be ") and "\n" not in message


def test_no_torch_needed():
    """The module is importable without PyTorch: the data generators and the CLI use it cheaply."""
    import ast
    import inspect

    import minildm.validation as v

    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(ast.parse(inspect.getsource(v)))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert "torch" not in imported
