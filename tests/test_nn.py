"""Tests for minildm.nn: timestep embeddings, attention, the SpatialTransformer and the U-Net."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from minildm.nn import (
    GEGLU,
    BasicTransformerBlock,
    CrossAttention,
    FeedForward,
    ResBlock,
    SelfAttention,
    SpatialTransformer,
    TimestepEmbedding,
    UNetConfig,
    UNetModel,
    count_parameters,
    describe_shapes,
    summary,
    timestep_embedding,
)

# A small U-Net for the tests that only check plumbing.
TINY = dict(model_channels=16, channel_mult=(1, 2), attention_levels=(1,), num_heads=2, dim_head=8)


# ---------------------------------------------------------------- timestep embedding
def test_timestep_embedding_at_zero_is_cos_ones_then_sin_zeros():
    emb = timestep_embedding(torch.tensor([0]), 8)
    assert emb.shape == (1, 8)
    torch.testing.assert_close(emb[0, :4], torch.ones(4))
    torch.testing.assert_close(emb[0, 4:], torch.zeros(4))


def test_timestep_embedding_known_values_and_layout():
    # dim 4: half = 2, freqs = [1, 10000^(-1/2)] = [1, 0.01]
    t = torch.tensor([1.0, 2.5])  # float timesteps are allowed
    emb = timestep_embedding(t, 4)
    expected = torch.tensor(
        [[math.cos(tt), math.cos(tt * 0.01), math.sin(tt), math.sin(tt * 0.01)] for tt in (1.0, 2.5)]
    )
    torch.testing.assert_close(emb, expected)


def test_timestep_embedding_scalar_odd_dim_and_bad_input():
    emb = timestep_embedding(3, 5)  # a plain int, odd dim: padded with one zero
    assert emb.shape == (1, 5)
    assert emb[0, -1] == 0
    torch.testing.assert_close(timestep_embedding(torch.tensor(3), 5), emb)  # 0-d tensor
    with pytest.raises(ValueError, match="dim"):
        timestep_embedding(torch.tensor([1]), 0)
    with pytest.raises(ValueError, match="timesteps"):
        timestep_embedding(torch.zeros(2, 2), 4)


def test_timestep_embedding_matches_diffusers():
    # Parity with the reference: diffusers with SD's settings (cos first, no frequency shift).
    diffusers_embeddings = pytest.importorskip("diffusers.models.embeddings")
    t = torch.tensor([0, 1, 17, 999])
    ref = diffusers_embeddings.get_timestep_embedding(t, 32, flip_sin_to_cos=True, downscale_freq_shift=0)
    torch.testing.assert_close(timestep_embedding(t, 32), ref)


def test_timestep_embedding_mlp_shape():
    mlp = TimestepEmbedding(16, 64)
    assert mlp(torch.tensor([0, 5, 999])).shape == (3, 64)


# ---------------------------------------------------------------- attention
def test_self_attention_shape_and_probabilities():
    torch.manual_seed(0)
    attn = SelfAttention(32, heads=4, dim_head=8)
    x = torch.randn(2, 10, 32)
    out, probs = attn(x, return_attention=True)
    assert out.shape == (2, 10, 32)
    assert probs.shape == (2, 4, 10, 10)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, 10))
    assert (probs >= 0).all()


def test_cross_attention_output_has_query_length():
    torch.manual_seed(0)
    attn = CrossAttention(32, context_dim=24, heads=2, dim_head=16)
    attn.save_attention = True
    x, context = torch.randn(3, 64, 32), torch.randn(3, 7, 24)  # 64 queries, 7 context tokens
    out = attn(x, context)
    assert out.shape == (3, 64, 32)
    assert attn.last_attention is not None and attn.last_attention.shape == (3, 2, 64, 7)
    torch.testing.assert_close(attn.last_attention.sum(-1), torch.ones(3, 2, 64))


def test_cross_attention_matches_torch_sdpa():
    torch.manual_seed(0)
    attn = CrossAttention(16, context_dim=12, heads=2, dim_head=8)
    x, context = torch.randn(2, 5, 16), torch.randn(2, 3, 12)
    split = lambda t: t.reshape(2, -1, 2, 8).transpose(1, 2)
    q, k, v = split(attn.to_q(x)), split(attn.to_k(context)), split(attn.to_v(context))
    ref = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 5, 16)
    torch.testing.assert_close(attn(x, context), attn.to_out(ref))


def test_cross_attention_bad_context():
    attn = CrossAttention(16, context_dim=12, heads=2, dim_head=8)
    x = torch.randn(2, 5, 16)
    with pytest.raises(ValueError, match="context_dim=12"):
        attn(x, torch.randn(2, 3, 10))
    with pytest.raises(ValueError, match="context is required"):
        attn(x)
    with pytest.raises(ValueError, match="batch size"):
        attn(x, torch.randn(1, 3, 12))
    with pytest.raises(ValueError, match="context must be None"):
        SelfAttention(16, heads=2, dim_head=8)(x, torch.randn(2, 3, 16))


def test_geglu_feedforward_and_block_shapes():
    x = torch.randn(2, 6, 16)
    assert GEGLU(16, 40)(x).shape == (2, 6, 40)
    assert FeedForward(16)(x).shape == (2, 6, 16)
    block = BasicTransformerBlock(16, heads=2, dim_head=8, context_dim=12)
    assert block(x, torch.randn(2, 4, 12)).shape == (2, 6, 16)


@pytest.mark.parametrize("context_dim", [None, 12])
def test_spatial_transformer_is_identity_at_init(context_dim):
    torch.manual_seed(0)
    st = SpatialTransformer(16, heads=2, dim_head=8, depth=2, context_dim=context_dim)
    x = torch.randn(2, 16, 4, 6)  # non-square on purpose
    context = None if context_dim is None else torch.randn(2, 5, context_dim)
    torch.testing.assert_close(st(x, context), x)  # proj_out starts at zero
    torch.nn.init.normal_(st.proj_out.weight, std=0.1)
    out = st(x, context)
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_spatial_transformer_checks_context_dim():
    st = SpatialTransformer(16, heads=2, dim_head=8, context_dim=12)
    with pytest.raises(ValueError, match="context_dim"):
        st(torch.randn(1, 16, 4, 4), torch.randn(1, 3, 7))
    with pytest.raises(ValueError, match="norm_groups"):
        SpatialTransformer(12, heads=2, dim_head=8, norm_groups=8)


# ---------------------------------------------------------------- U-Net
def test_resblock_shapes_and_identity_at_init():
    rb = ResBlock(16, 16, time_embed_dim=32)
    x, emb = torch.randn(2, 16, 8, 8), torch.randn(2, 32)
    torch.testing.assert_close(rb(x, emb), x)  # zero-init last conv + identity skip
    assert ResBlock(16, 32, time_embed_dim=32)(x, emb).shape == (2, 32, 8, 8)


@pytest.mark.parametrize("size", [16, 32, 64])
def test_unet_default_config_keeps_shape(size):
    model = UNetModel(UNetConfig())
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert model(x, torch.tensor([1, 500])).shape == x.shape


def test_unet_latent_config_conditional_and_timestep_forms():
    cfg = UNetConfig(
        in_channels=4,
        out_channels=4,
        model_channels=16,
        channel_mult=(1, 2),
        attention_levels=(0, 1),
        num_heads=2,
        dim_head=8,
        context_dim=12,
        image_size=8,
    )
    model = UNetModel(cfg)
    x, context = torch.randn(3, 4, 8, 8), torch.randn(3, 5, 12)
    with torch.no_grad():
        for t in (7, 7.5, torch.tensor(7), torch.tensor([7]), torch.tensor([1, 2, 3])):
            assert model(x, t, context).shape == x.shape
        assert model(torch.randn(3, 4, 8, 12), 7, context).shape == (3, 4, 8, 12)  # non-square


def test_unet_untrained_predicts_zero():
    model = UNetModel(UNetConfig(**TINY))
    with torch.no_grad():
        assert torch.count_nonzero(model(torch.randn(1, 3, 16, 16), 3)) == 0  # zero-init `out` conv


def _perturb_zero_init(model: torch.nn.Module) -> None:
    """Give every all-zero weight small random values, so gradients reach every parameter."""
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and not p.any():
                p.normal_(0, 0.05)


@pytest.mark.parametrize("context_dim", [None, 12])
def test_unet_gradients_reach_every_parameter(context_dim):
    torch.manual_seed(0)
    model = UNetModel(UNetConfig(**TINY, context_dim=context_dim))
    _perturb_zero_init(model)
    context = None if context_dim is None else torch.randn(2, 3, context_dim)
    out = model(torch.randn(2, 3, 16, 16), torch.tensor([3, 900]), context)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_unet_config_round_trip_and_unknown_keys():
    cfg = UNetConfig(
        in_channels=4, out_channels=4, channel_mult=(1, 2), attention_levels=(0, 1), context_dim=64
    )
    d = json.loads(json.dumps(cfg.to_dict()))  # survives JSON
    assert UNetConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match="bogus"):
        UNetConfig.from_dict({**d, "bogus": 1})
    with pytest.raises(ValueError, match="attention_levels"):
        UNetConfig(channel_mult=(1, 2), attention_levels=(2,))
    with pytest.raises(ValueError, match="norm_groups"):
        UNetConfig(model_channels=20)


def test_unet_bad_inputs():
    model = UNetModel(UNetConfig(**TINY))  # 2 levels: sizes must be divisible by 2
    with pytest.raises(ValueError, match="in_channels=3"):
        model(torch.randn(1, 4, 16, 16), 0)
    with pytest.raises(ValueError, match="divisible by 2"):
        model(torch.randn(1, 3, 15, 16), 0)
    with pytest.raises(ValueError, match="divisible by 4"):
        UNetModel(UNetConfig())(torch.randn(1, 3, 18, 18), 0)
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.randn(1, 3, 16, 16), 0, torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match=r"timesteps must be .* \[B=2\]"):
        model(torch.randn(2, 3, 16, 16), torch.tensor([1, 2, 3]))
    cond = UNetModel(UNetConfig(**TINY, context_dim=12))
    with pytest.raises(ValueError, match="context_dim=12"):
        cond(torch.randn(1, 3, 16, 16), 0, torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match="context is required"):
        cond(torch.randn(1, 3, 16, 16), 0)


def test_summary_lists_shapes_down_and_up():
    model = UNetModel(UNetConfig())
    rows = describe_shapes(model)
    shapes = {name: shape for name, _, shape, _ in rows}
    assert shapes["input_blocks.0"] == (1, 32, 32, 32)
    assert shapes["middle_block"] == (1, 64, 8, 8)
    assert shapes["out"] == (1, 3, 32, 32)
    assert [r[0] for r in rows][-2:] == [f"output_blocks.{len(model.output_blocks) - 1}", "out"]
    table = summary(model)
    assert "middle_block" in table and "SpatialTransformer" in table
    assert f"{count_parameters(model):,}" in table


# ---------------------------------------------------------------- SD 1.x / 2.x configurations
def _transformers(model: UNetModel) -> list[SpatialTransformer]:
    return [m for m in model.modules() if isinstance(m, SpatialTransformer)]


def test_unet_heads_follow_channels_or_head_width_follows():
    base = dict(model_channels=16, channel_mult=(1, 2), attention_levels=(0, 1), context_dim=12)
    # SD 1.x: 4 heads everywhere, head width = channels / 4 (16 -> 4, 32 -> 8)
    sd1 = UNetModel(UNetConfig(**base, num_heads=4, dim_head=None))
    widths = {(st.channels, blk.attn1.heads, blk.attn1.dim_head) for st in _transformers(sd1)
              for blk in st.transformer_blocks}
    assert widths == {(16, 4, 4), (32, 4, 8)}
    # SD 2.x: head width 8, heads = channels / 8 (16 -> 2, 32 -> 4), Linear proj_in / proj_out
    sd2 = UNetModel(UNetConfig(**base, num_heads=None, dim_head=8, use_linear_projection=True))
    widths = {(st.channels, blk.attn1.heads, blk.attn1.dim_head) for st in _transformers(sd2)
              for blk in st.transformer_blocks}
    assert widths == {(16, 2, 8), (32, 4, 8)}
    assert all(st.proj_in.weight.dim() == 2 and st.proj_out.weight.dim() == 2 for st in _transformers(sd2))
    # one head count per level (diffusers' list form); the middle block takes the last level's
    per_level = UNetConfig(**base, num_heads=(2, 8), dim_head=None)
    assert per_level.heads_at(0) == (2, 8) and per_level.heads_at(1) == (8, 4)
    assert UNetModel(per_level).middle_block[1].transformer_blocks[0].attn2.heads == 8
    cfg = UNetConfig(**base, num_heads=None, dim_head=8, use_linear_projection=True, norm_eps=1e-6)
    assert UNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_unet_linear_projection_is_the_conv_projection_in_another_layout():
    torch.manual_seed(0)
    conv = SpatialTransformer(16, heads=2, dim_head=8, context_dim=12)
    linear = SpatialTransformer(16, heads=2, dim_head=8, context_dim=12, use_linear_projection=True)
    state = conv.state_dict()
    state["proj_out.weight"] = torch.randn_like(state["proj_out.weight"])  # (not the identity)
    conv.load_state_dict(state)
    linear.load_state_dict({k: v.flatten(1) if k in ("proj_in.weight", "proj_out.weight") else v
                            for k, v in state.items()})
    x, c = torch.randn(2, 16, 4, 4), torch.randn(2, 3, 12)
    torch.testing.assert_close(linear(x, c), conv(x, c), atol=1e-5, rtol=1e-5)


def test_fused_attention_gives_the_plain_numbers():
    from minildm.nn.attention import use_fused_attention

    torch.manual_seed(0)
    model = UNetModel(UNetConfig(**TINY, context_dim=12))
    _perturb_zero_init(model)
    x, c = torch.randn(2, 3, 16, 16), torch.randn(2, 5, 12)
    with torch.no_grad():
        plain = model(x, 10, c)
        fused = use_fused_attention(model)(x, 10, c)
        torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)
        attn = model.middle_block[1].transformer_blocks[0].attn2
        attn.save_attention = True  # attention maps need the probabilities: the plain path runs
        model(x, 10, c)
        assert attn.last_attention is not None and attn.last_attention.shape[-1] == 5
    with pytest.raises(ValueError, match="fused"):
        use_fused_attention(model, "yes")


def test_unet_old_config_dicts_load_with_the_old_defaults():
    old = {"attention_levels": [0, 1], "channel_mult": [1, 2], "context_dim": 64, "dim_head": 16,
           "dropout": 0.0, "image_size": 8, "in_channels": 4, "model_channels": 64, "norm_groups": 8,
           "num_heads": 4, "num_res_blocks": 1, "out_channels": 4, "time_embed_dim": None,
           "transformer_depth": 1}
    cfg = UNetConfig.from_dict(old)
    assert (cfg.use_linear_projection, cfg.norm_eps, cfg.heads_at(0)) == (False, 1e-5, (4, 16))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(num_heads=None, dim_head=None), "both be None"),
        (dict(num_heads=3, dim_head=None), "num_heads \\(3\\) must divide"),
        (dict(num_heads=None, dim_head=12), "dim_head \\(12\\) must divide"),
        (dict(num_heads=(2,), dim_head=None), r"positive ints \(one per level\)"),
        (dict(num_heads=0), "num_heads"),
        (dict(use_linear_projection=1), "use_linear_projection"),
        (dict(norm_eps=0.0), "norm_eps"),
    ],
)
def test_unet_bad_head_configs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNetConfig(**{**TINY, **kwargs})
