"""Text: the word-level tokenizer of the shapes world, a mini CLIP, and the frozen text encoder."""

from minildm.text.clip import (
    MiniCLIPConfig,
    build_clip,
    clip_logits,
    clip_loss,
    image_embeddings,
    retrieval_accuracy,
    similarity,
    text_embeddings,
)
from minildm.text.encoder import TextEncoder
from minildm.text.grammar import GRAMMAR, check_prompts
from minildm.text.tokenizer import (
    BOS,
    EOS,
    MAX_LENGTH,
    PAD,
    SPECIAL_TOKENS,
    build_tokenizer,
    context_length,
    decode_ids,
    is_word_level,
    load_tokenizer,
    save_tokenizer,
    tokenize,
    tokenizer_dir,
)

__all__ = [
    "BOS", "EOS", "GRAMMAR", "MAX_LENGTH", "PAD", "SPECIAL_TOKENS", "check_prompts",
    "MiniCLIPConfig", "TextEncoder",
    "build_clip", "build_tokenizer", "clip_logits", "clip_loss", "context_length", "decode_ids",
    "image_embeddings", "is_word_level", "load_tokenizer", "retrieval_accuracy", "save_tokenizer",
    "similarity", "text_embeddings", "tokenize", "tokenizer_dir",
]
