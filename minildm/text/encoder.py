r"""The frozen text encoder that conditions the U-Net: the text side of a CLIP, one context vector per
token position.

Stable Diffusion keeps CLIP's text Transformer, frozen, and lets the U-Net cross-attend to every output
position (``last_hidden_state``, SD: [B, 77, 768]; ours: [B, 16, 64]). ``clip_skip`` (as in diffusers'
pipelines) takes the hidden states of an earlier layer instead, through the final layer norm:

    clip_skip = 0:  context = LN(h_L)          (every word has seen the words before it, L layers deep)
    clip_skip = k:  context = LN(h_{L-k})
    clip_skip = L:  context = LN(h_0) = LN(token embedding + position embedding)   (no word sees another)

Lesson 10 uses the last one to ask whether binding "yellow" to "circle" must happen in the text encoder.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import AutoTokenizer, CLIPModel, CLIPTextModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from minildm.text.clip import _device
from minildm.text.tokenizer import context_length, save_tokenizer, tokenize
from minildm.validation import check_int


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence transformers' load report (it lists every unused vision weight) and progress bars."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


class TextEncoder(nn.Module):
    """The frozen text side of CLIP: prompts -> the context [B, L, width] the U-Net attends to.

    ``context = text_model(ids).last_hidden_state``: one vector per token position, padding included,
    as Stable Diffusion's ``FrozenCLIPEmbedder`` does (an earlier layer's with ``clip_skip``). Frozen
    means ``requires_grad = False`` and always in eval mode: :meth:`train` does not switch it back
    (CompVis' ``disabled_train``).

    Checkpoint layout of :meth:`save_pretrained` (read back by :meth:`from_pretrained`)::

        path/text_model/   config.json, model.safetensors   (CLIPTextModel.save_pretrained)
        path/tokenizer/    tokenizer.json, tokenizer_config.json
    """

    def __init__(
        self, text_model: CLIPTextModel, tokenizer: PreTrainedTokenizerBase, frozen: bool = True,
        clip_skip: int = 0,
    ):
        super().__init__()
        if len(tokenizer) > text_model.config.vocab_size:
            raise ValueError(
                f"the tokenizer has {len(tokenizer)} tokens, the text model only "
                f"{text_model.config.vocab_size} embeddings"
            )
        self.text_model = text_model
        self.tokenizer = tokenizer
        if frozen:
            self.text_model.requires_grad_(False)
        self.frozen = frozen
        self.clip_skip = clip_skip
        self.train(False)

    @property
    def clip_skip(self) -> int:
        """Layers left out at the end (diffusers' ``clip_skip``; see the module docstring)."""
        return self._clip_skip

    @clip_skip.setter
    def clip_skip(self, value: int) -> None:
        layers = self.text_model.config.num_hidden_layers
        hint = f"the text encoder has {layers} layers"
        self._clip_skip = check_int("clip_skip", value, low=0, high=layers, hint=hint)

    def train(self, mode: bool = True) -> TextEncoder:
        """A frozen encoder stays in eval mode, whatever its parent module asks."""
        return super().train(mode and not self.frozen)

    @property
    def width(self) -> int:
        """Size of one context vector (ours 64; OpenAI ViT-B/32 512; SD 1.x 768)."""
        return self.text_model.config.hidden_size

    @property
    def max_length(self) -> int:
        """Context positions L per prompt (ours 16; SD 77)."""
        return min(context_length(self.tokenizer), self.text_model.config.max_position_embeddings)

    @property
    def device(self) -> torch.device:
        return _device(self.text_model)

    def tokenize(self, prompts: str | list[str]) -> dict[str, torch.Tensor]:
        """``input_ids`` and ``attention_mask`` [B, L] on this encoder's device."""
        tokens = tokenize(self.tokenizer, prompts)
        return {k: t.to(self.device) for k, t in tokens.items()}

    def encode_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids [B, L] -> context [B, L, width]."""
        if attention_mask is not None:
            attention_mask = attention_mask.to(self.device)
        skip = self.clip_skip
        out = self.text_model(
            input_ids=input_ids.to(self.device), attention_mask=attention_mask, output_hidden_states=skip > 0
        )
        if skip == 0:
            return out.last_hidden_state  # LN(h_L)
        inner = getattr(self.text_model, "text_model", self.text_model)  # (transformers 4 nests it)
        return inner.final_layer_norm(out.hidden_states[-(skip + 1)])  # LN(h_{L - skip})

    def forward(self, prompts: str | list[str]) -> torch.Tensor:
        """Prompts -> context [B, L, width]; ``""`` gives the unconditional context of CFG."""
        tokens = self.tokenize(prompts)
        return self.encode_ids(tokens["input_ids"], tokens["attention_mask"])

    @classmethod
    def from_clip(cls, clip_model: CLIPModel, tokenizer: PreTrainedTokenizerBase) -> TextEncoder:
        """Copy the text Transformer out of a trained CLIP (projection and image side are dropped)."""
        text_model = CLIPTextModel(clip_model.config.text_config)
        # transformers 4 nests the layers one level deeper (CLIPTextModel.text_model); 5 does not.
        getattr(text_model, "text_model", text_model).load_state_dict(clip_model.text_model.state_dict())
        return cls(text_model.to(_device(clip_model)), tokenizer)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write ``path/text_model`` (safetensors) and ``path/tokenizer``."""
        folder = Path(path)
        with _quiet():
            self.text_model.save_pretrained(str(folder / "text_model"))
        save_tokenizer(self.tokenizer, folder / "tokenizer")
        return folder

    @classmethod
    def from_pretrained(cls, path: str | Path) -> TextEncoder:
        """Load a frozen text encoder from a local folder, one of:

        - our layout (:meth:`save_pretrained`): ``path/text_model`` + ``path/tokenizer``
          (a diffusers Stable Diffusion folder, ``text_encoder/`` + ``tokenizer/``, works too);
        - a transformers CLIP folder, e.g. a local copy of ``openai/clip-vit-base-patch32``
          (``CLIPTextModel`` takes the text weights out of a full ``CLIPModel``).

        Nothing is downloaded: a Hub id such as ``"openai/clip-vit-base-patch32"`` is refused at once,
        with how to make a local copy while online (see :func:`check_text_encoder_folder`)."""
        model_dir, tok_dir = check_text_encoder_folder(path)
        with _quiet():
            text_model = CLIPTextModel.from_pretrained(str(model_dir), local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
        return cls(text_model, tokenizer)


#: the files that make a tokenizer folder (any one of them: fast tokenizers, or CLIP's BPE files)
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")
_CLIP_MODEL_TYPES = ("clip", "clip_text_model")


def check_text_encoder_folder(path: str | Path) -> tuple[Path, Path]:
    """``(model folder, tokenizer folder)`` of a local CLIP text encoder (see
    :meth:`TextEncoder.from_pretrained`), checked before anything loads: a path that is not a folder
    here (a Hub id, offline) or a folder that holds no CLIP text model and tokenizer is refused with a
    ValueError or FileNotFoundError saying what was expected."""
    folder = Path(path)
    if not folder.is_dir():
        hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", str(path)) is not None and not folder.exists()
        example = str(path) if hub_id else "openai/clip-vit-base-patch32"
        raise FileNotFoundError(
            f"text encoder {str(path)!r}: {'no such folder' if not folder.exists() else 'not a folder'}"
            f"{' (it looks like a Hugging Face Hub id)' if hub_id else ''}. A local folder is needed "
            "(nothing is downloaded here); make one while online, e.g. "
            f"`hf download {example} --local-dir DIR` (`huggingface-cli download` before huggingface_hub "
            f"1.0), or in Python `CLIPModel.from_pretrained({example!r}).save_pretrained(DIR)` and the same "
            "with CLIPTokenizer, then pass DIR"
        )
    model_dir = tok_dir = folder
    for sub in ("text_model", "text_encoder"):
        if (folder / sub / "config.json").is_file():
            model_dir, tok_dir = folder / sub, folder / "tokenizer"
            break
    expected = (
        "expected a CLIP text encoder: text_model/ (or text_encoder/) and tokenizer/ folders, or a "
        "transformers CLIP folder with config.json, model weights and tokenizer files "
        f"({', '.join(TOKENIZER_FILES)})"
    )
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{str(folder)!r} is not a text encoder (no config.json): {expected}")
    try:
        config = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(config_path)!r} is not valid JSON ({err}): {expected}") from err
    if not isinstance(config, dict) or config.get("model_type") not in _CLIP_MODEL_TYPES:
        found = config.get("kind") or config.get("model_type") if isinstance(config, dict) else None
        hint = ("; a minildm CLIP checkpoint loads with minildm.checkpoints.load_text_encoder"
                if found == "clip" else "")
        raise ValueError(
            f"{str(folder)!r} is not a text encoder ({str(config_path)!r} describes "
            f"{'a ' + repr(found) + ' model' if found else 'no CLIP model'}): {expected}{hint}"
        )
    if not any((tok_dir / name).is_file() for name in TOKENIZER_FILES):
        raise FileNotFoundError(f"{str(folder)!r} has no tokenizer (none of {', '.join(TOKENIZER_FILES)} in "
                                f"{str(tok_dir)!r}): {expected}")
    return model_dir, tok_dir
