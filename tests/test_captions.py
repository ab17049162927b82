"""The caption grammar: parse, format, and clear errors for anything outside it."""

import pytest

from minildm.data import VOCABULARY, CaptionSpec, ObjectSpec, format_caption, parse_caption


@pytest.mark.parametrize(
    "caption",
    [
        "a large red circle in the top left",
        "a red circle",
        "a circle",
        "a small triangle in the center",
        "a large square",
        "a cyan square in the bottom right",
        "a red circle to the left of a blue square",
        "a green triangle above a magenta circle",
        "a yellow square below a cyan triangle",
        "a blue circle to the right of a red circle",
    ],
)
def test_round_trip(caption):
    assert format_caption(parse_caption(caption)) == caption


def test_parse_fields():
    spec = parse_caption("a large red circle in the top left")
    assert spec == CaptionSpec("one", (ObjectSpec("circle", "red", "large", "top left"),))
    assert spec.attributes == ("count", "colour", "shape", "size", "position")
    two = parse_caption("a red circle to the left of a blue square")
    assert two.kind == "two" and two.relation == "to the left of"
    assert [o.pair for o in two.objects] == [("red", "circle"), ("blue", "square")]
    assert two.attributes == ("count", "colour", "shape", "relation")
    assert parse_caption("a circle").attributes == ("count", "shape")


def test_heldout_flag():
    assert parse_caption("a blue triangle").is_heldout
    assert parse_caption("a red circle above a yellow circle").is_heldout
    assert not parse_caption("a blue circle").is_heldout
    assert not parse_caption("a triangle").is_heldout


def test_unknown_word_is_named_with_the_vocabulary():
    with pytest.raises(ValueError, match="unknown word 'purple'") as err:
        parse_caption("a purple circle")
    assert "magenta" in str(err.value) and "triangle" in str(err.value)


@pytest.mark.parametrize(
    "caption, fragment",
    [
        ("red circle", "expected the article"),
        ("a red", "expected a shape"),
        ("a circle red", "expected a relation"),
        ("a circle in the", "expected a position"),
        ("a circle in top left", "expected 'in the'"),
        ("a large circle above a square", "two-object captions name no size"),
        ("a red circle above a blue square in the center", "after the second object"),
        ("a red circle above a red circle", "must differ"),
        ("", "empty"),
    ],
)
def test_grammar_errors(caption, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_caption(caption)


def test_not_a_string():
    with pytest.raises(ValueError, match="must be a str"):
        parse_caption(3)


def test_vocabulary_is_small_and_sorted():
    assert list(VOCABULARY) == sorted(set(VOCABULARY))
    assert {"a", "in", "the", "left", "of", "center"} <= set(VOCABULARY)
    assert len(VOCABULARY) < 40
