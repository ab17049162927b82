"""The caption grammar of the shapes world (``docs/shapes-world.md``).

Captions are lower case, words only, no punctuation. Two scene kinds::

    one object:  a [size] [colour] {shape} [in the {position}]
    two objects: a [colour] {shape} {relation} a [colour] {shape}

Words in brackets are optional: a prompt may name only what it cares about
(``"a red circle"``, ``"a small triangle in the center"``). :func:`parse_caption`
turns a caption into a :class:`CaptionSpec`; :func:`format_caption` does the reverse.
Anything outside the grammar raises a ``ValueError`` that names the offending word.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

#: The palette, RGB in 0..255, exactly as the spec gives it.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 40, 40),
    "green": (40, 220, 40),
    "blue": (40, 80, 255),
    "yellow": (255, 230, 40),
    "cyan": (40, 230, 230),
    "magenta": (230, 40, 230),
}

#: Bounding extent of an object as a fraction of the canvas side.
SIZES: dict[str, float] = {"small": 1 / 4, "large": 1 / 2}

#: Object centre as a fraction of the canvas side, (x, y) with y pointing down.
POSITIONS: dict[str, tuple[float, float]] = {
    "top left": (1 / 4, 1 / 4),
    "top right": (3 / 4, 1 / 4),
    "bottom left": (1 / 4, 3 / 4),
    "bottom right": (3 / 4, 3 / 4),
    "center": (1 / 2, 1 / 2),
}

#: Relation -> (axis, sign): axis 0 is x, 1 is y; sign -1 means the first object's
#: coordinate is smaller than the second's ("to the left of": x1 < x2).
RELATIONS: dict[str, tuple[int, int]] = {
    "to the left of": (0, -1),
    "to the right of": (0, +1),
    "above": (1, -1),
    "below": (1, +1),
}

#: (colour, shape) pairs that never appear in training images, in either scene kind.
HELDOUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {("blue", "triangle"), ("yellow", "circle"), ("magenta", "square")}
)

SCENE_KINDS: tuple[str, ...] = ("one", "two")


def _phrase_words(phrases) -> set[str]:
    return {word for phrase in phrases for word in phrase.split()}


#: Every word a caption may contain, sorted: the vocabulary of the shapes world.
VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        {"a", "in", "the"}
        | set(SHAPES)
        | set(COLOURS)
        | set(SIZES)
        | _phrase_words(POSITIONS)
        | _phrase_words(RELATIONS)
    )
)


@dataclass(frozen=True)
class ObjectSpec:
    """What a caption says about one object; ``None`` means "not named"."""

    shape: str
    colour: str | None = None
    size: str | None = None
    position: str | None = None

    @property
    def pair(self) -> tuple[str | None, str]:
        return (self.colour, self.shape)


@dataclass(frozen=True)
class CaptionSpec:
    """A parsed caption: the scene kind, its object specs and (two objects) the relation."""

    kind: str
    objects: tuple[ObjectSpec, ...]
    relation: str | None = None
    words: tuple[str, ...] = field(default=(), compare=False)

    @property
    def attributes(self) -> tuple[str, ...]:
        """The attributes this caption names, in a fixed order (always ``count`` and ``shape``)."""
        named = ["count"]
        for attr in ("colour", "shape", "size", "position"):
            if attr == "shape" or any(getattr(o, attr) is not None for o in self.objects):
                named.append(attr)
        if self.relation is not None:
            named.append("relation")
        return tuple(named)

    @property
    def is_heldout(self) -> bool:
        """True when the caption names a held-out (colour, shape) pair."""
        return any(o.pair in HELDOUT_PAIRS for o in self.objects)


def format_caption(spec: CaptionSpec) -> str:
    """Write a :class:`CaptionSpec` back as a caption string."""
    if spec.kind == "one":
        (obj,) = spec.objects
        words = ["a"] + [w for w in (obj.size, obj.colour) if w] + [obj.shape]
        if obj.position:
            words += ["in", "the", obj.position]
        return " ".join(words)
    first, second = spec.objects
    parts = []
    for obj in (first, second):
        parts.append(" ".join(["a"] + ([obj.colour] if obj.colour else []) + [obj.shape]))
    return f"{parts[0]} {spec.relation} {parts[1]}"


class _Reader:
    """A cursor over the words of a caption, with helpful errors."""

    def __init__(self, caption: str, words: list[str]):
        self.caption, self.words, self.i = caption, words, 0

    def peek(self) -> str | None:
        return self.words[self.i] if self.i < len(self.words) else None

    def take_phrase(self, phrases) -> str | None:
        """Consume the longest phrase (of several words) that starts here, if any."""
        for phrase in sorted(phrases, key=lambda p: -len(p.split())):
            n = len(phrase.split())
            if self.words[self.i : self.i + n] == phrase.split():
                self.i += n
                return phrase
        return None

    def expect(self, what: str, phrases) -> str:
        found = self.take_phrase(phrases)
        if found is None:
            got = self.peek()
            got_text = "the end of the caption" if got is None else repr(got)
            options = ", ".join(repr(p) for p in phrases)
            raise ValueError(
                f"caption {self.caption!r}: expected {what} ({options}) at word {self.i + 1}, "
                f"got {got_text}"
            )
        return found


def _read_object(reader: _Reader, allow_size_and_position: bool) -> ObjectSpec:
    reader.expect("the article", ["a"])
    size = reader.take_phrase(SIZES) if allow_size_and_position else None
    colour = reader.take_phrase(COLOURS)
    shape = reader.expect("a shape", SHAPES)
    position = None
    if allow_size_and_position and reader.peek() == "in":
        reader.expect("'in the'", ["in the"])
        position = reader.expect("a position", POSITIONS)
    return ObjectSpec(shape=shape, colour=colour, size=size, position=position)


def parse_caption(caption: str) -> CaptionSpec:
    """Parse a caption of the shapes world into a :class:`CaptionSpec`.

    >>> parse_caption("a large red circle in the top left").objects[0].position
    'top left'

    Raises ``ValueError`` for a word outside :data:`VOCABULARY` (naming the word and
    listing the vocabulary) or for words in an order the grammar does not allow.
    """
    if not isinstance(caption, str):
        raise ValueError(f"caption must be a str, got {type(caption).__name__}")
    words = caption.split()
    if not words:
        raise ValueError("caption is empty; expected e.g. 'a red circle'")
    for word in words:
        if word not in VOCABULARY:
            raise ValueError(
                f"caption {caption!r}: unknown word {word!r}; the vocabulary is "
                f"{', '.join(VOCABULARY)}"
            )
    reader = _Reader(caption, words)
    first = _read_object(reader, allow_size_and_position=True)
    if reader.peek() is None:
        return CaptionSpec("one", (first,), words=tuple(words))
    if first.size is not None or first.position is not None:
        raise ValueError(
            f"caption {caption!r}: unexpected {reader.peek()!r} after a one-object caption "
            "(two-object captions name no size or position)"
        )
    relation = reader.expect("a relation or the end of the caption", RELATIONS)
    second = _read_object(reader, allow_size_and_position=False)
    if reader.peek() is not None:
        raise ValueError(
            f"caption {caption!r}: unexpected {reader.peek()!r} after the second object"
        )
    if first.pair == second.pair and first.colour is not None:
        raise ValueError(
            f"caption {caption!r}: the two objects must differ in colour or shape"
        )
    return CaptionSpec("two", (first, second), relation=relation, words=tuple(words))
