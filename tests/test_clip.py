"""Tests for minildm.text.clip: the mini CLIP, its loss (parity with transformers), retrieval,
EOS pooling, and the frozen TextEncoder with its two checkpoint layouts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from minildm.data.dataset import ShapesDataset
from minildm.text import (
    MAX_LENGTH,
    MiniCLIPConfig,
    TextEncoder,
    build_clip,
    build_tokenizer,
    clip_logits,
    clip_loss,
    retrieval_accuracy,
    save_tokenizer,
    similarity,
    tokenize,
)

TINY = MiniCLIPConfig(
    text_width=32, text_layers=1, text_heads=2, text_intermediate=64, patch_size=8,
    vision_width=32, vision_layers=1, vision_heads=2, vision_intermediate=64, projection_dim=32,
)
DISTINCT = ["a red circle", "a blue square", "a small green triangle", "a circle above a square"]


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster, and far faster on a machine busy with training."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.fixture(scope="module")
def clip(tok):
    torch.manual_seed(0)
    return build_clip(TINY, tok).eval()


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_config_round_trip_and_validation(tok) -> None:
    cfg = MiniCLIPConfig()
    assert MiniCLIPConfig.from_dict(cfg.to_dict()) == cfg
    hf = cfg.to_transformers(tok)
    assert hf.text_config.vocab_size == len(tok)
    assert hf.text_config.max_position_embeddings == MAX_LENGTH
    assert (hf.text_config.eos_token_id, hf.text_config.pad_token_id) == (tok.eos_token_id, tok.pad_token_id)
    assert hf.vision_config.image_size == 32 and hf.vision_config.patch_size == 4
    with pytest.raises(ValueError, match="text_heads"):
        MiniCLIPConfig(text_width=30, text_heads=4)
    with pytest.raises(ValueError, match="patch_size"):
        MiniCLIPConfig(patch_size=5)
    with pytest.raises(ValueError, match="vocab_size"):
        MiniCLIPConfig(vocab_size=10).to_transformers(tok)
    with pytest.raises(ValueError, match="max_length"):
        MiniCLIPConfig(max_length=8).to_transformers(tok)


class _LegacyIds:
    """Just what to_transformers reads from a tokenizer, with BOS = 1, EOS = 2."""

    pad_token_id, bos_token_id, eos_token_id, model_max_length = 0, 1, 2, 16

    def __len__(self) -> int:
        return 26


def test_eos_id_2_is_refused() -> None:
    with pytest.raises(ValueError, match="largest id"):
        MiniCLIPConfig().to_transformers(_LegacyIds())


def test_default_clip_forward_shapes(tok) -> None:
    torch.manual_seed(0)
    model = build_clip(MiniCLIPConfig(), tok)
    enc = tokenize(tok, DISTINCT[:3])
    out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=_images(2))
    assert out.logits_per_image.shape == (2, 3) and out.logits_per_text.shape == (3, 2)
    assert out.text_model_output.last_hidden_state.shape == (3, MAX_LENGTH, 64)
    assert out.vision_model_output.last_hidden_state.shape == (2, (32 // 4) ** 2 + 1, 64)  # patches + [CLS]
    assert out.image_embeds.shape == (2, 64) and out.text_embeds.shape == (3, 64)


def test_clip_loss_matches_transformers(tok) -> None:
    torch.manual_seed(0)
    model = build_clip(MiniCLIPConfig(**{**TINY.to_dict(), "logit_scale_init": 1.3}), tok)
    enc = tokenize(tok, DISTINCT)
    images = _images(len(DISTINCT))
    with torch.no_grad():
        ref = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], pixel_values=images,
                    return_loss=True)
        plain = clip_loss(model, images, enc["input_ids"], enc["attention_mask"])
        soft = clip_loss(model, images, enc["input_ids"], enc["attention_mask"], dedupe=True)
        logits = clip_logits(model, images, enc["input_ids"], enc["attention_mask"])
    torch.testing.assert_close(logits, ref.logits_per_image)
    torch.testing.assert_close(plain, ref.loss)
    torch.testing.assert_close(soft, ref.loss)  # no duplicate captions: the same loss


def _loss_and_grads(model, *args, **kwargs):
    model.zero_grad()
    loss = clip_loss(model, *args, **kwargs)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def test_soft_targets(clip, tok) -> None:
    captions = ["a red circle", "a blue square", "a red circle", "a large red circle", "a red circle"]
    enc = tokenize(tok, captions)
    ids, mask = enc["input_ids"], enc["attention_mask"]
    images = _images(len(captions), seed=1)
    with torch.no_grad():
        logits = clip_logits(clip, images, ids, mask)

    # dedupe: targets_ij = [caption_i == caption_j] / #{k: caption_k == caption_i}, from the strings
    same = torch.tensor([[float(a == b) for b in captions] for a in captions])
    targets = same / same.sum(1, keepdim=True)
    expected = -(
        (targets * logits.log_softmax(1)).sum(1).mean() + (targets * logits.T.log_softmax(1)).sum(1).mean()
    ) / 2
    soft, soft_grads = _loss_and_grads(clip, images, ids, mask, dedupe=True)
    torch.testing.assert_close(soft, expected)
    # Exact duplicates have identical text vectors: the plain loss is the same function, same gradients.
    plain, plain_grads = _loss_and_grads(clip, images, ids, mask)
    torch.testing.assert_close(soft, plain)
    for a, b in zip(soft_grads, plain_grads):
        torch.testing.assert_close(a, b)

    # A caption true of another image ("a red circle" fits image 3, "a large red circle") does change it.
    positives = same.bool().clone()
    positives[3, [0, 2, 4]] = True  # P_ij: caption j is true of image i
    p = positives.float()
    expected = -(
        (p / p.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
        + (p.T / p.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
    ) / 2
    with torch.no_grad():
        semantic = clip_loss(clip, images, ids, mask, positives=positives)
    torch.testing.assert_close(semantic, expected)
    assert not torch.allclose(semantic, plain)
    with pytest.raises(ValueError, match="diagonal"):
        clip_loss(clip, images, ids, mask, positives=torch.zeros(5, 5, dtype=torch.bool))
    clip.zero_grad(set_to_none=True)


def test_training_lowers_the_loss(tok) -> None:
    data = ShapesDataset(size=64, seed=0, two_object_fraction=0.3)
    images, enc = data.tensors(), tokenize(tok, data.captions)
    torch.manual_seed(0)
    model = build_clip(TINY, tok)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(60):
        loss = clip_loss(model, images, enc["input_ids"], enc["attention_mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.75 * losses[0], losses
    acc = retrieval_accuracy(model, images, data.captions, tok, batch_size=16)
    assert acc["num_images"] == 64 and acc["num_captions"] == len(set(data.captions))
    assert acc["image_to_text_chance"] == pytest.approx(1 / len(set(data.captions)))
    assert acc["image_to_text"] > 5 * acc["image_to_text_chance"]  # ~0.28 vs 1/63 after 60 steps
    for key in ("image_to_text", "text_to_image", "text_to_image_chance"):
        assert 0.0 <= acc[key] <= 1.0


def test_similarity_and_retrieval_inputs(clip, tok) -> None:
    enc = tokenize(tok, DISTINCT)
    sim = similarity(clip, _images(3), enc["input_ids"], enc["attention_mask"])
    assert sim.shape == (3, len(DISTINCT)) and not sim.requires_grad
    assert (sim.abs() <= 1 + 1e-5).all()
    with pytest.raises(ValueError, match="captions"):
        retrieval_accuracy(clip, _images(3), DISTINCT, tok)


def test_text_pooled_at_eos(clip, tok) -> None:
    enc = tokenize(tok, ["a red circle", "a large blue square in the top left"])
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        out = clip.text_model(input_ids=ids, attention_mask=mask)
        eos = (ids == tok.eos_token_id).int().argmax(1)
        torch.testing.assert_close(out.pooler_output, out.last_hidden_state[torch.arange(2), eos])
        # A token after EOS (masked out) does not change the sentence vector...
        changed = ids.clone()
        changed[0, 6] = tok.convert_tokens_to_ids("triangle")
        after = clip.text_model(input_ids=changed, attention_mask=mask).pooler_output
        torch.testing.assert_close(after, out.pooler_output)
        # ...a word before it does.
        changed[0, 2] = tok.convert_tokens_to_ids("blue")
        word = clip.text_model(input_ids=changed, attention_mask=mask).pooler_output
    assert not torch.allclose(word[0], out.pooler_output[0])
    torch.testing.assert_close(word[1], out.pooler_output[1])


def test_text_encoder_from_clip_is_frozen(clip, tok) -> None:
    encoder = TextEncoder.from_clip(clip, tok)
    assert (encoder.width, encoder.max_length, encoder.device) == (32, MAX_LENGTH, torch.device("cpu"))
    context = encoder(["a red circle", ""])
    assert context.shape == (2, MAX_LENGTH, 32)
    assert not context.requires_grad
    assert not any(p.requires_grad for p in encoder.parameters())
    parent = nn.ModuleDict({"text": encoder, "unet": nn.Linear(2, 2)}).train()
    assert parent["unet"].training and not encoder.training and not encoder.text_model.training
    enc = tokenize(tok, ["a red circle", ""])
    with torch.no_grad():
        ref = clip.text_model(**enc).last_hidden_state
    torch.testing.assert_close(context, ref)
    torch.testing.assert_close(encoder.encode_ids(enc["input_ids"], enc["attention_mask"]), ref)
    # A copy, not shared weights: training CLIP further leaves the encoder as it is.
    assert encoder.text_model.embeddings.token_embedding.weight.data_ptr() != (
        clip.text_model.embeddings.token_embedding.weight.data_ptr()
    )


def test_clip_skip_takes_an_earlier_layer(clip, tok) -> None:
    """clip_skip k: the hidden states k layers before the last, through the final layer norm (diffusers'
    convention); k = 0 is last_hidden_state; k = L is the embeddings alone, where no word sees another."""
    encoder = TextEncoder.from_clip(clip, tok)
    layers = encoder.text_model.config.num_hidden_layers
    enc = tokenize(tok, ["a yellow circle", "a yellow square", "a red circle"])
    with torch.no_grad():
        out = encoder.text_model(**enc, output_hidden_states=True)
        inner = getattr(encoder.text_model, "text_model", encoder.text_model)
        norm = inner.final_layer_norm
        torch.testing.assert_close(norm(out.hidden_states[-1]), out.last_hidden_state)
        contexts = {}
        for skip in range(layers + 1):
            encoder.clip_skip = skip
            contexts[skip] = encoder.encode_ids(enc["input_ids"], enc["attention_mask"])
            torch.testing.assert_close(contexts[skip], norm(out.hidden_states[layers - skip]))
        embedded = inner.embeddings(input_ids=enc["input_ids"])
    torch.testing.assert_close(contexts[0], out.last_hidden_state)
    torch.testing.assert_close(contexts[layers], norm(embedded))
    assert not torch.allclose(contexts[0], contexts[layers])
    # with the embeddings alone, "circle" is the same vector after "yellow" as after "red" (position 3);
    # after the Transformer's causal layers it is not
    assert torch.equal(contexts[layers][0, 3], contexts[layers][2, 3])
    assert not torch.allclose(contexts[0][0, 3], contexts[0][2, 3])
    for bad in (-1, layers + 1, 1.0, True):
        with pytest.raises(ValueError, match=rf"clip_skip must be an int in \[0, {layers}\]"):
            TextEncoder.from_clip(clip, tok).clip_skip = bad
    assert TextEncoder(encoder.text_model, tok, clip_skip=layers).clip_skip == layers


def test_text_encoder_save_load_our_layout(clip, tok, tmp_path) -> None:
    encoder = TextEncoder.from_clip(clip, tok)
    encoder.save_pretrained(tmp_path / "enc")
    assert (tmp_path / "enc" / "text_model" / "model.safetensors").exists()
    assert (tmp_path / "enc" / "tokenizer" / "tokenizer.json").exists()
    loaded = TextEncoder.from_pretrained(tmp_path / "enc")
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    prompts = ["a red circle", "a cyan square below a circle", ""]
    torch.testing.assert_close(loaded(prompts), encoder(prompts))
    with pytest.raises(ValueError, match="purple"):
        loaded("a purple circle")


def test_text_encoder_from_transformers_clip_folder(clip, tok, tmp_path) -> None:
    clip.save_pretrained(tmp_path)  # a full transformers CLIPModel folder...
    save_tokenizer(tok, tmp_path)  # ...with its tokenizer beside it, as on the Hub
    encoder = TextEncoder.from_pretrained(tmp_path)
    enc = tokenize(tok, DISTINCT)
    context = encoder(DISTINCT)
    assert context.shape == (len(DISTINCT), MAX_LENGTH, encoder.width)
    with torch.no_grad():
        torch.testing.assert_close(context, clip.text_model(**enc).last_hidden_state)
    with pytest.raises(FileNotFoundError):
        TextEncoder.from_pretrained(tmp_path / "missing")
