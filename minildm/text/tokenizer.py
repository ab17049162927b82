"""A word-level tokenizer for the shapes world: a caption -> a fixed-length row of integer ids.

A text encoder cannot read letters; it reads a sequence of integer ids, one per token, and looks
each one up in an embedding table. Stable Diffusion uses CLIP's byte-pair tokenizer (49,408 tokens
learned from the internet). Our world has only a couple of dozen words (:data:`VOCABULARY`), so one
token per word is enough:

    "a red circle"  ->  <|startoftext|> a red circle <|endoftext|> <|pad|> ... <|pad|>
                    ->  [2, 3, 17, 9, 1, 0, ..., 0]                 (MAX_LENGTH = 16 ids)

The pieces are those of every Hugging Face tokenizer, built with the ``tokenizers`` library:

    normalizer       Lowercase            "A Red circle" -> "a red circle"
    pre-tokenizer    WhitespaceSplit      -> ["a", "red", "circle"]
    model            WordLevel            -> a fixed dict word -> id (no sub-words, no unknowns)
    post-processor   TemplateProcessing   -> wrap as <|startoftext|> $A <|endoftext|>
    padding          to MAX_LENGTH with <|pad|>, and an ``attention_mask`` of 1 (word) / 0 (pad)

Special-token ids (the three come first, then :data:`VOCABULARY` in sorted order):

    <|pad|> = 0        so that a padded row reads ``[..., 0, 0, 0]``
    <|endoftext|> = 1  the token whose output CLIP pools as "the sentence" (see ``clip.py``)
    <|startoftext|> = 2

Why not BOS = 1, EOS = 2? ``transformers``' CLIP text model treats ``eos_token_id == 2`` as a
legacy config and then pools at the *largest id* in the row instead of at the EOS token (fine for
OpenAI's tokenizer, where EOS = 49407 is the largest id, wrong for ours).

Why a *fixed* length (SD: 77, ours: 16 = the longest caption's 10 words + BOS + EOS, with room)?
Prompts of different lengths must stack into one ``[B, L]`` batch; the text encoder has one learned
position embedding per slot, so ``L`` can be at most that many; and the U-Net's cross-attention
always receives a context tensor of the same shape ``[B, L, width]``, whatever the prompt.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from minildm.data.captions import VOCABULARY
from minildm.validation import check_int

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
PAD = "<|pad|>"
#: Special tokens in id order: PAD = 0, EOS = 1, BOS = 2 (EOS must not be 2; see the module docstring).
SPECIAL_TOKENS: tuple[str, ...] = (PAD, EOS, BOS)
#: Ids per prompt: 10 words (the longest caption) + BOS + EOS = 12, rounded up to 16.
MAX_LENGTH = 16
#: Cap on the context length for tokenizers that set no sensible ``model_max_length`` (CLIP's 77).
DEFAULT_CAP = 77


def tokenizer_dir() -> Path:
    """Where the shipped tokenizer lives: ``data/tokenizer`` of the repository."""
    return Path(__file__).resolve().parents[2] / "data" / "tokenizer"


def build_tokenizer(max_length: int = MAX_LENGTH) -> PreTrainedTokenizerFast:
    """Build the word-level tokenizer of the shapes world (deterministic: same ids every time).

    ``max_length`` is the fixed number of ids per prompt; it must leave room for the longest caption
    (10 words) plus BOS and EOS.
    """
    max_length = check_int("max_length", max_length, low=12, hint="10 words + BOS + EOS")
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + VOCABULARY)}
    # No unk_token: a word outside the vocabulary is an error (tokenize() says which), not a token.
    tok = Tokenizer(models.WordLevel(vocab, unk_token=None))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",  # "$A" is the prompt's words
        special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
    )
    tok.enable_padding(pad_id=vocab[PAD], pad_token=PAD, length=max_length)
    tok.no_truncation()  # too long is an error, never a silent cut
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=max_length,
        padding_side="right",
    )


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, path: str | Path) -> Path:
    """Write ``tokenizer`` to the folder ``path`` (``tokenizer.json``, ``tokenizer_config.json``).

    To ship the default one: ``save_tokenizer(build_tokenizer(), tokenizer_dir())``.
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(folder))
    config_file = folder / "tokenizer_config.json"
    if isinstance(tokenizer, PreTrainedTokenizerFast) and config_file.exists():
        # transformers 5 writes its internal class name "TokenizersBackend"; the public name
        # "PreTrainedTokenizerFast" loads with AutoTokenizer in transformers 4 and 5 alike.
        config = json.loads(config_file.read_text())
        if config.get("tokenizer_class") == "TokenizersBackend":
            config["tokenizer_class"] = "PreTrainedTokenizerFast"
            config_file.write_text(json.dumps(config, indent=2) + "\n")
    return folder


def load_tokenizer(path: str | Path | None = None) -> PreTrainedTokenizerFast:
    """Load a tokenizer folder written by :func:`save_tokenizer`.

    With no ``path``, load ``data/tokenizer`` (:func:`tokenizer_dir`), or, if that folder has not
    been shipped, build the same tokenizer in memory with :func:`build_tokenizer`.
    """
    if path is None:
        if not (tokenizer_dir() / "tokenizer.json").exists():
            return build_tokenizer()
        path = tokenizer_dir()
    folder = Path(path)
    if not (folder / "tokenizer.json").exists():
        raise FileNotFoundError(f"no tokenizer.json in {folder}; write one with save_tokenizer()")
    return PreTrainedTokenizerFast.from_pretrained(str(folder))


def is_word_level(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True for a tokenizer built by :func:`build_tokenizer` (its vocabulary holds our PAD)."""
    return PAD in tokenizer.get_vocab()


def context_length(tokenizer: PreTrainedTokenizerBase) -> int:
    """The fixed number of ids per prompt: ``model_max_length``, capped at 77 when it is unset
    (transformers stores "no limit" as a huge number, 1e30)."""
    n = tokenizer.model_max_length
    return int(n) if isinstance(n, int) and 0 < n <= 10_000 else DEFAULT_CAP


def words_of(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[str]:
    """The words of ``prompt`` as the tokenizer sees them: normalised (lower case), then split."""
    backend = tokenizer.backend_tokenizer
    text = backend.normalizer.normalize_str(prompt) if backend.normalizer else prompt
    return [w for w, _ in backend.pre_tokenizer.pre_tokenize_str(text)]


def _check_prompts(prompts: str | list[str]) -> list[str]:
    if isinstance(prompts, str):
        return [prompts]
    if not isinstance(prompts, (list, tuple)):
        raise TypeError(f"prompts must be a str or a list of str, got {type(prompts).__name__}")
    if not prompts:
        raise ValueError("prompts is an empty list; give at least one prompt ('' is the empty prompt)")
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompts[{i}] must be a str, got {type(p).__name__} ({p!r})")
    return list(prompts)


def tokenize(tokenizer: PreTrainedTokenizerBase, prompts: str | list[str]) -> dict[str, torch.Tensor]:
    """Prompts -> ``{"input_ids", "attention_mask"}``, both long tensors of shape ``[B, L]``.

    ``L`` is the tokenizer's fixed context length (16 for ours, 77 for CLIP's). Each row is
    ``BOS w_1 ... w_n EOS PAD ... PAD`` with ``attention_mask`` 1 on ``BOS .. EOS`` and 0 on padding.

    The empty prompt ``""`` is allowed and gives ``[BOS, EOS, PAD, ...]``: it is the "unconditional"
    prompt of classifier-free guidance, ``eps = eps(x, "") + s * (eps(x, prompt) - eps(x, ""))``.

    For our word-level tokenizer every word is checked first: an unknown word raises a
    ``ValueError`` naming it, its prompt and the vocabulary. Any tokenizer (e.g. OpenAI's CLIP
    tokenizer) raises a ``ValueError`` when a prompt needs more than ``L`` ids: no silent truncation.
    """
    prompts = _check_prompts(prompts)
    length = context_length(tokenizer)
    if is_word_level(tokenizer):
        known = set(tokenizer.get_vocab()) - set(tokenizer.all_special_tokens)
        for prompt in prompts:
            words = words_of(tokenizer, prompt)
            for word in words:
                if word not in known:
                    raise ValueError(
                        f"prompt {prompt!r}: unknown word {word!r}; the vocabulary is "
                        f"{', '.join(sorted(known))}"
                    )
            if len(words) > length - 2:
                raise ValueError(
                    f"prompt {prompt!r} has {len(words)} words; at most {length - 2} fit "
                    f"(max_length {length} = words + BOS + EOS)"
                )
    enc = tokenizer(
        prompts, padding="max_length", truncation=False, max_length=length, return_tensors="pt"
    )
    if enc["input_ids"].shape[1] > length:
        too_long = [p for p, m in zip(prompts, enc["attention_mask"]) if int(m.sum()) > length]
        raise ValueError(f"prompts {too_long} need more than max_length = {length} tokens")
    return {"input_ids": enc["input_ids"].long(), "attention_mask": enc["attention_mask"].long()}


def decode_ids(tokenizer: PreTrainedTokenizerBase, ids: torch.Tensor | list[int]) -> list[str]:
    """One display string per id, e.g. ``["<|startoftext|>", "a", "red", "circle", ...]``.

    Handy to label the rows of a cross-attention map, one per token. CLIP's byte-pair tokens
    lose their end-of-word mark ``</w>``.
    """
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise ValueError(f"ids must be one row (1-D), got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    return [t.replace("</w>", "") for t in tokenizer.convert_ids_to_tokens(list(ids))]
