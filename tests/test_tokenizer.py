"""Tests for minildm.text.tokenizer: ids, special tokens, padding, errors, save/load."""

from __future__ import annotations

import pytest
import torch

from minildm.data.captions import VOCABULARY, parse_caption
from minildm.text.tokenizer import (
    BOS,
    EOS,
    MAX_LENGTH,
    PAD,
    build_tokenizer,
    decode_ids,
    is_word_level,
    load_tokenizer,
    save_tokenizer,
    tokenize,
    tokenizer_dir,
)

CAPTIONS = [
    "a circle",  # shortest
    "a red circle",
    "a small square",
    "a large blue triangle in the top left",
    "a triangle in the center",
    "a green square above a yellow triangle",
    "a cyan circle below a square",
    "a magenta triangle to the right of a magenta circle",  # longest: 10 words
    "a red square to the left of a blue circle",
]


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


def test_special_ids_and_vocabulary(tok) -> None:
    assert (tok.pad_token_id, tok.eos_token_id, tok.bos_token_id) == (0, 1, 2)
    assert tok.convert_ids_to_tokens([0, 1, 2]) == [PAD, EOS, BOS]
    assert tok.eos_token_id != 2  # transformers' CLIP pools at argmax(ids) when eos_token_id == 2
    assert len(tok) == 3 + len(VOCABULARY)
    assert [tok.convert_tokens_to_ids(w) for w in VOCABULARY] == list(range(3, 3 + len(VOCABULARY)))
    assert tok.model_max_length == MAX_LENGTH == 16
    assert is_word_level(tok)


def test_every_caption_kind_round_trips(tok) -> None:
    for caption in CAPTIONS:
        parse_caption(caption)  # they are valid captions
    enc = tokenize(tok, CAPTIONS)
    assert enc["input_ids"].shape == enc["attention_mask"].shape == (len(CAPTIONS), MAX_LENGTH)
    assert enc["input_ids"].dtype == enc["attention_mask"].dtype == torch.long
    for caption, ids, mask in zip(CAPTIONS, enc["input_ids"], enc["attention_mask"]):
        n = len(caption.split())
        tokens = decode_ids(tok, ids)
        assert tokens == [BOS, *caption.split(), EOS] + [PAD] * (MAX_LENGTH - n - 2)
        assert mask.tolist() == [1] * (n + 2) + [0] * (MAX_LENGTH - n - 2)
        assert ids[0] == tok.bos_token_id and ids[n + 1] == tok.eos_token_id
        assert (ids[n + 2 :] == tok.pad_token_id).all()
        assert tok.decode(ids, skip_special_tokens=True) == caption


def test_single_prompt_and_lower_case(tok) -> None:
    one = tokenize(tok, "A Red CIRCLE")
    assert one["input_ids"].shape == (1, MAX_LENGTH)
    assert torch.equal(one["input_ids"], tokenize(tok, ["a red circle"])["input_ids"])
    assert torch.equal(tokenize(tok, "a  red\tcircle ")["input_ids"], one["input_ids"])


def test_empty_prompt_is_bos_eos_then_padding(tok) -> None:
    enc = tokenize(tok, ["", "a red circle"])
    assert decode_ids(tok, enc["input_ids"][0]) == [BOS, EOS] + [PAD] * (MAX_LENGTH - 2)
    assert enc["attention_mask"][0].tolist() == [1, 1] + [0] * (MAX_LENGTH - 2)


def test_unknown_word_names_word_prompt_and_vocabulary(tok) -> None:
    with pytest.raises(ValueError) as err:
        tokenize(tok, ["a red circle", "a purple circle"])
    message = str(err.value)
    assert "'purple'" in message and "'a purple circle'" in message
    assert all(word in message for word in VOCABULARY)
    with pytest.raises(ValueError, match="unknown word '<\\|pad\\|>'"):
        tokenize(tok, f"a red {PAD}")  # special tokens cannot be typed in


def test_too_long_prompt(tok) -> None:
    tokenize(tok, " ".join(["a"] * (MAX_LENGTH - 2)))  # exactly fits
    with pytest.raises(ValueError, match="at most 14"):
        tokenize(tok, " ".join(["a"] * (MAX_LENGTH - 1)))


def test_bad_prompt_types(tok) -> None:
    with pytest.raises(TypeError, match="str"):
        tokenize(tok, 3)
    with pytest.raises(TypeError, match=r"prompts\[1\]"):
        tokenize(tok, ["a circle", None])
    with pytest.raises(ValueError, match="empty list"):
        tokenize(tok, [])


def test_build_is_deterministic_and_max_length() -> None:
    assert build_tokenizer().get_vocab() == build_tokenizer().get_vocab()
    long = build_tokenizer(max_length=20)
    assert tokenize(long, "a red circle")["input_ids"].shape == (1, 20)
    with pytest.raises(ValueError, match="max_length"):
        build_tokenizer(max_length=8)


def test_save_load_round_trip(tok, tmp_path) -> None:
    folder = save_tokenizer(tok, tmp_path / "tokenizer")
    assert (folder / "tokenizer.json").exists()
    loaded = load_tokenizer(folder)
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "model_max_length"):
        assert getattr(loaded, name) == getattr(tok, name)
    prompts = [*CAPTIONS, ""]
    a, b = tokenize(tok, prompts), tokenize(loaded, prompts)
    assert torch.equal(a["input_ids"], b["input_ids"])
    assert torch.equal(a["attention_mask"], b["attention_mask"])
    with pytest.raises(ValueError, match="purple"):
        tokenize(loaded, "a purple circle")
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "nowhere")


def test_default_load_works_with_or_without_shipped_folder(tok) -> None:
    assert tokenizer_dir().parts[-2:] == ("data", "tokenizer")
    default = load_tokenizer()
    assert torch.equal(
        tokenize(default, CAPTIONS)["input_ids"], tokenize(tok, CAPTIONS)["input_ids"]
    )


def test_decode_ids_accepts_lists_and_rejects_batches(tok) -> None:
    assert decode_ids(tok, [2, 1, 0]) == [BOS, EOS, PAD]
    with pytest.raises(ValueError, match="1-D"):
        decode_ids(tok, tokenize(tok, ["a", "a"])["input_ids"])


def test_other_tokenizers_pad_to_their_length_and_refuse_long_prompts() -> None:
    """A real CLIP tokenizer (byte-pair, here with a toy 54-token vocabulary: no download)."""
    from transformers import CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {t: i for i, t in enumerate([*letters, *(c + "</w>" for c in letters), BOS, EOS])}
    clip_tok = CLIPTokenizer(vocab=vocab, merges=[])
    assert not is_word_level(clip_tok)
    enc = tokenize(clip_tok, ["a red circle", ""])
    assert enc["input_ids"].shape == (2, 77)  # model_max_length unset (1e30): capped at CLIP's 77
    assert decode_ids(clip_tok, enc["input_ids"][0, :5]) == [BOS, "a", "r", "e", "d"]
    assert enc["input_ids"][1, :2].tolist() == [vocab[BOS], vocab[EOS]]
    assert enc["attention_mask"].sum(1).tolist() == [12, 2]
    with pytest.raises(ValueError, match="max_length = 77"):
        tokenize(clip_tok, "a " * 80)
