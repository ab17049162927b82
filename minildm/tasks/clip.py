"""Lesson 06's first recipe: a tiny ``transformers.CLIPModel`` trained contrastively on captioned
shapes-world images (one and two objects, held-out colour-shape pairs excluded).

As in Stable Diffusion the three networks are trained separately: the VAE (lesson 04), then the
text encoder, contrastively, as CLIP was, then the U-Net on the VAE's latents with both of them
frozen (:mod:`minildm.tasks.text2img`). The tokenizer is not trained: it is built from the
caption grammar (:mod:`minildm.text`) and shipped in ``data/tokenizer``.
"""

from __future__ import annotations

import torch

from minildm.tasks.common import DeviceCache, Task, data_config, get_preset, shapes_dataset, train_config
from minildm.text import MiniCLIPConfig, build_clip, clip_loss, load_tokenizer, tokenize
from minildm.training import TrainConfig

CLIP_DATA = {
    "name": "shapes",
    "size": 40_000,
    "two_object_fraction": 0.5,
    "omit_prob": 0.3,
    "image_size": 32,
}
CLIP_BUDGETS = {
    "quick": TrainConfig(steps=30, batch_size=64, lr=1e-3, warmup_steps=5, checkpoint_every=30),
    "full": TrainConfig(steps=2_000, batch_size=256, lr=1e-3, warmup_steps=100, checkpoint_every=250),
    # the full budget on a GPU: 2x the batch (twice the negatives per caption), half the steps
    "gpu": TrainConfig(steps=1_000, batch_size=512, lr=1.2e-3, warmup_steps=50, checkpoint_every=250),
}


def clip_task(
    budget: str = "quick", seed: int = 0, data_size: int | None = None, preset: str | None = None
) -> Task:
    """Contrastive training of the mini CLIP with the symmetric InfoNCE loss; ``preset``: see
    :func:`get_preset`. It trains in one process (the loss needs every caption of the batch)."""
    preset = get_preset(preset)
    tokenizer = load_tokenizer()
    data_cfg = data_config(CLIP_DATA, seed, data_size)
    dataset = shapes_dataset(data_cfg)
    images = dataset.tensors()
    tokens = tokenize(tokenizer, dataset.captions)
    clip_config = MiniCLIPConfig(vocab_size=len(tokenizer))
    config = {"kind": "clip", "model": {"clip": clip_config.to_dict()}, "data": data_cfg, "preset": preset}
    data = {name: DeviceCache(t) for name, t in
            (("images", images), ("ids", tokens["input_ids"]), ("mask", tokens["attention_mask"]))}

    def loss(
        model: torch.nn.Module, generator: torch.Generator, batch_size: int, shard: slice | None = None
    ) -> torch.Tensor:
        if shard is not None:
            raise ValueError(
                "the mini CLIP trains in one process: its contrastive loss compares every caption of "
                "the batch with every image, which a rank's part of the batch does not hold "
                "(run it without torchrun)"
            )
        device, on = next(model.parameters()).device, generator.device
        idx = torch.randint(len(images), (batch_size,), generator=generator, device=on)
        ids, mask = data["ids"].on(on)[idx].to(device), data["mask"].on(on)[idx].to(device)
        # the symmetric InfoNCE loss: image i should pick caption i among the batch's, and back
        return clip_loss(model, data["images"].on(on)[idx].to(device), ids, mask)

    cfg = train_config(CLIP_BUDGETS, budget, seed, preset)
    torch.manual_seed(seed)
    return Task("clip", build_clip(clip_config, tokenizer), loss, config, cfg)
