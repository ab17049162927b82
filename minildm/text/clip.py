"""A mini CLIP for the shapes world, and the frozen text encoder that conditions the U-Net.

CLIP (Radford et al., 2021, "Learning Transferable Visual Models From Natural Language
Supervision") trains two encoders side by side so that an image and its caption land on nearby
unit vectors:

    image [N, 3, 32, 32] -> ViT: 4x4 patches + [CLS], Transformer, [CLS] out -> visual_projection -> u_i
    ids   [N, 16]        -> causal Transformer, output at <|endoftext|>      -> text_projection   -> v_j
    logits_ij = exp(t) * <u_i / |u_i|, v_j / |v_j|>      (t = logit_scale, learned; exp(t) starts at 1/0.07)

Training pulls the N matching pairs (the diagonal) together and pushes the N^2 - N others apart
(:func:`clip_loss`). Stable Diffusion then throws the image side away and keeps the text side,
frozen: the U-Net cross-attends to *every* output position of the text Transformer (the
``last_hidden_state``, SD: [B, 77, 768]; ours: [B, 16, 64]), not only to the pooled vector
(:class:`TextEncoder`).

We use ``transformers``' own CLIP classes, only much smaller (:class:`MiniCLIPConfig`), so a learner
can swap in OpenAI's real CLIP with :meth:`TextEncoder.from_pretrained`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerBase

from minildm.config import ConfigMixin
from minildm.text.tokenizer import context_length, tokenize
from minildm.validation import check_positive_int


@dataclass
class MiniCLIPConfig(ConfigMixin):
    """Everything that defines a mini CLIP; the defaults train on a laptop CPU in minutes.

    Attributes:
        text_width, text_layers, text_heads, text_intermediate: the text Transformer
            (OpenAI ViT-B/32: 512, 12, 8, 2048).
        image_size, patch_size: the ViT sees (image_size / patch_size)^2 patches + a [CLS] token
            (32 / 4 -> 64 + 1 tokens).
        vision_width, vision_layers, vision_heads, vision_intermediate: the image Transformer.
        projection_dim: size of the shared image-text embedding space.
        max_length: text positions (one learned position embedding each); >= the tokenizer's length.
        vocab_size: token embedding rows; ``None`` takes ``len(tokenizer)``.
        hidden_act: CLIP's ``quick_gelu``, x * sigmoid(1.702 x).
        logit_scale_init: initial t; exp(2.6592) = 1 / 0.07, the CLIP paper's temperature.
    """

    text_width: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 128
    image_size: int = 32
    patch_size: int = 4
    vision_width: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    vision_intermediate: int = 128
    projection_dim: int = 64
    max_length: int = 16
    vocab_size: int | None = None
    hidden_act: str = "quick_gelu"
    logit_scale_init: float = 2.6592

    def __post_init__(self) -> None:
        for name in (
            "text_width", "text_layers", "text_heads", "text_intermediate", "image_size", "patch_size",
            "vision_width", "vision_layers", "vision_heads", "vision_intermediate", "projection_dim",
            "max_length",
        ):
            check_positive_int(f"MiniCLIPConfig.{name}", getattr(self, name))
        check_positive_int("MiniCLIPConfig.vocab_size", self.vocab_size, optional=True)
        for side in ("text", "vision"):
            width, heads = getattr(self, f"{side}_width"), getattr(self, f"{side}_heads")
            if width % heads:
                raise ValueError(f"MiniCLIPConfig.{side}_heads ({heads}) must divide {side}_width ({width})")
        if self.image_size % self.patch_size:
            raise ValueError(f"patch_size ({self.patch_size}) must divide image_size ({self.image_size})")

    def to_transformers(self, tokenizer: PreTrainedTokenizerBase) -> CLIPConfig:
        """The equivalent ``transformers.CLIPConfig``, with the token ids of ``tokenizer``.

        ``eos_token_id`` matters: ``CLIPTextModel`` pools the sentence at the first position whose
        id equals it. Its one exception (transformers 5.x, ``models/clip/modeling_clip.py``,
        ``CLIPTextModel.forward``): ``eos_token_id == 2`` is read as an old OpenAI config and the
        model pools at ``input_ids.argmax(-1)``, the largest id, instead. We refuse that id.
        """
        vocab_size = len(tokenizer) if self.vocab_size is None else self.vocab_size
        if vocab_size < len(tokenizer):
            raise ValueError(
                f"vocab_size ({vocab_size}) is smaller than the tokenizer's {len(tokenizer)} tokens"
            )
        if tokenizer.eos_token_id is None:
            raise ValueError("the tokenizer has no eos_token; CLIP pools the text at that token")
        if tokenizer.eos_token_id == 2:
            raise ValueError(
                "eos_token_id == 2 makes transformers' CLIPTextModel pool at the largest id instead of "
                "at the EOS token (legacy OpenAI configs); give EOS another id"
            )
        if context_length(tokenizer) > self.max_length:
            raise ValueError(
                f"the tokenizer gives {context_length(tokenizer)} ids per prompt but max_length is "
                f"{self.max_length} (one position embedding per id)"
            )
        text = dict(
            vocab_size=vocab_size, hidden_size=self.text_width, num_hidden_layers=self.text_layers,
            num_attention_heads=self.text_heads, intermediate_size=self.text_intermediate,
            max_position_embeddings=self.max_length, hidden_act=self.hidden_act,
            projection_dim=self.projection_dim, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        vision = dict(
            image_size=self.image_size, patch_size=self.patch_size, num_channels=3,
            hidden_size=self.vision_width, num_hidden_layers=self.vision_layers,
            num_attention_heads=self.vision_heads, intermediate_size=self.vision_intermediate,
            hidden_act=self.hidden_act, projection_dim=self.projection_dim,
        )
        return CLIPConfig(
            text_config=text, vision_config=vision, projection_dim=self.projection_dim,
            logit_scale_init_value=self.logit_scale_init,
        )


def build_clip(config: MiniCLIPConfig, tokenizer: PreTrainedTokenizerBase) -> CLIPModel:
    """A randomly initialised ``transformers.CLIPModel`` of the given size (seed with torch.manual_seed)."""
    return CLIPModel(config.to_transformers(tokenizer))


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def image_embeddings(model: CLIPModel, images: torch.Tensor) -> torch.Tensor:
    """Images [N, 3, H, W] in [-1, 1] -> unit vectors u / |u| [N, projection_dim].

    Our images go in as ``pixel_values`` directly: the model is trained on them, so OpenAI's
    mean/std normalisation (for *its* training photos) has no role here.
    """
    pooled = model.vision_model(pixel_values=images.to(_device(model))).pooler_output  # [CLS] out
    u = model.visual_projection(pooled)
    return u / u.norm(dim=-1, keepdim=True)


def text_embeddings(model: CLIPModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Token ids [N, L] -> unit vectors v / |v| [N, projection_dim] (pooled at <|endoftext|>)."""
    device = _device(model)
    pooled = model.text_model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
    v = model.text_projection(pooled.pooler_output)
    return v / v.norm(dim=-1, keepdim=True)


def clip_logits(
    model: CLIPModel, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """logits_ij = exp(logit_scale) * cos(image_i, text_j), shape [N_images, N_texts]."""
    u = image_embeddings(model, images)
    v = text_embeddings(model, input_ids, attention_mask)
    return model.logit_scale.exp() * u @ v.T


def clip_loss(
    model: CLIPModel,
    images: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    dedupe: bool = False,
    positives: torch.Tensor | None = None,
) -> torch.Tensor:
    """The symmetric InfoNCE loss of CLIP on a batch of N (image, caption) pairs.

        loss = ( CE(logits, targets) + CE(logits^T, targets^T) ) / 2

    Row i of ``logits`` classifies image i over the N captions; row j of ``logits^T`` classifies
    caption j over the N images. Plain CLIP's targets are the diagonal, ``arange(N)``.

    Soft targets, for batches where a caption also fits other images than its own. ``positives``
    is a bool matrix [N_images, N_texts], P_ij = "caption j is true of image i" (diagonal all true);
    the probability mass is spread evenly over the positives:

        targets_ij = P_ij / sum_k P_ik       (and the text side uses P^T the same way)

    ``dedupe=True`` builds P from identical token ids, P_ij = [ids_i == ids_j]. A lesson hides here:
    two copies of "a red circle" get *identical* text vectors, so their rows (and columns) of
    ``logits`` are identical, and the soft loss then equals the plain loss exactly, value and
    gradient: the push of caption 3 away from image 7 cancels the pull of caption 7 (the same
    vector) towards it. Exact duplicates are harmless. The false negatives that do hurt are
    *different* captions true of the same image ("a red circle" and "a large red circle in the
    center"): pass those as ``positives``. With P = I this is the plain loss. The temperature
    ``logit_scale`` is not clamped here; CLIP clamps exp(t) <= 100 after each optimiser step.
    """
    logits = clip_logits(model, images, input_ids, attention_mask)
    n = logits.shape[0]
    if positives is None and not dedupe:
        targets = torch.arange(n, device=logits.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
    if positives is None:
        positives = (input_ids[:, None, :] == input_ids[None, :, :]).all(dim=-1)  # [N, N]
    if positives.shape != logits.shape or not positives.bool().diagonal().all():
        raise ValueError(
            f"positives must be a [{n}, {n}] bool matrix with a true diagonal (each pair matches itself), "
            f"got shape {tuple(positives.shape)}"
        )
    p = positives.to(device=logits.device, dtype=logits.dtype)
    image_targets = p / p.sum(dim=1, keepdim=True)  # row i: uniform over the captions true of image i
    text_targets = p.T / p.T.sum(dim=1, keepdim=True)  # row j: uniform over the images caption j fits
    return (F.cross_entropy(logits, image_targets) + F.cross_entropy(logits.T, text_targets)) / 2


@torch.no_grad()
def similarity(
    model: CLIPModel, images: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """Cosine similarities [N_images, N_texts], each in [-1, 1] (no temperature)."""
    return image_embeddings(model, images) @ text_embeddings(model, input_ids, attention_mask).T


@torch.no_grad()
def retrieval_accuracy(
    model: CLIPModel,
    images: torch.Tensor,
    captions: list[str],
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 256,
) -> dict[str, float]:
    """Top-1 retrieval between ``images`` and the *distinct* strings among their ``captions``.

    image -> text: image i picks the most similar distinct caption; right if it is ``captions[i]``.
    text -> image: each distinct caption picks the most similar image; right if that image's
    caption is this caption. The chance levels (random picks) come with the result.
    """
    if len(captions) != len(images):
        raise ValueError(f"{len(images)} images but {len(captions)} captions")
    distinct = sorted(set(captions))
    tokens = tokenize(tokenizer, distinct)
    v = text_embeddings(model, tokens["input_ids"], tokens["attention_mask"])
    chunks = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    u = torch.cat([image_embeddings(model, chunk) for chunk in chunks])
    sim = (u @ v.T).cpu()  # [N_images, N_distinct]
    index = {c: k for k, c in enumerate(distinct)}
    own = torch.tensor([index[c] for c in captions])  # the column of image i's own caption
    image_to_text = (sim.argmax(dim=1) == own).float().mean().item()
    text_to_image = (own[sim.argmax(dim=0)] == torch.arange(len(distinct))).float().mean().item()
    counts = torch.bincount(own, minlength=len(distinct)).float()
    return {
        "image_to_text": image_to_text,
        "text_to_image": text_to_image,
        "image_to_text_chance": 1.0 / len(distinct),
        "text_to_image_chance": (counts / len(captions)).mean().item(),
        "num_images": float(len(images)),
        "num_captions": float(len(distinct)),
    }
