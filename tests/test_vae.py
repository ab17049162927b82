"""Tests for minildm.vae: shapes, the Gaussian posterior, the loss, the scale factor, checkpoints."""

from __future__ import annotations

import pytest
import torch

from minildm.checkpoints import load_weights, read_config, save_model
from minildm.vae import (
    AutoencoderKL,
    DiagonalGaussianDistribution,
    VAEConfig,
    compression_ratio,
    estimate_scale_factor,
    vae_loss,
)

SMALL = VAEConfig(ch=16, ch_mult=(1, 2, 2), norm_groups=8)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster, and far faster on a machine busy with training."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vae() -> AutoencoderKL:
    torch.manual_seed(0)
    return AutoencoderKL(SMALL).eval()


@pytest.mark.parametrize(
    ("cfg", "size", "latent_size"),
    [(SMALL, 32, 8), (SMALL, 64, 16), (VAEConfig(ch=16, ch_mult=(1, 2)), 32, 16)],
)
def test_encode_decode_shapes(cfg: VAEConfig, size: int, latent_size: int) -> None:
    model = AutoencoderKL(cfg)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        posterior = model.encode(x)
        assert posterior.mean.shape == (2, 4, latent_size, latent_size)
        assert posterior.logvar.shape == (2, 4, latent_size, latent_size)
        assert model.decode(posterior.sample()).shape == x.shape
        recon, post = model(x, sample_posterior=False)
    assert recon.shape == x.shape and torch.equal(post.mode(), post.mean)
    assert cfg.latent_shape((3, size, size)) == (4, latent_size, latent_size)


def test_downsample_factor_and_compression_ratio() -> None:
    assert VAEConfig().downsample_factor == 4
    assert VAEConfig(ch_mult=(1, 2)).downsample_factor == 2
    assert VAEConfig().latent_shape() == (4, 8, 8)
    # 32 * 32 * 3 = 3072 numbers -> 8 * 8 * 4 = 256 numbers
    assert VAEConfig().compression_ratio() == 12.0
    # Stable Diffusion: 512x512x3 -> 64x64x4 with ch_mult (1, 2, 4, 4), f = 8
    assert compression_ratio((3, 512, 512), (4, 64, 64)) == 48.0
    assert VAEConfig(ch_mult=(1, 2, 4, 4)).compression_ratio((3, 512, 512)) == 48.0
    with pytest.raises(ValueError, match="image_shape"):
        compression_ratio((3, 0, 32), (4, 8, 8))


def test_kl_zero_for_standard_normal_positive_otherwise() -> None:
    zeros = torch.zeros(2, 8, 3, 3)  # mean 0, logvar 0
    assert torch.equal(DiagonalGaussianDistribution(zeros).kl(), torch.zeros(2))
    params = zeros.clone()
    params[:, :4] = 0.5  # mean moved
    assert (DiagonalGaussianDistribution(params).kl() > 0).all()
    params = zeros.clone()
    params[:, 4:] = -1.0  # variance shrunk
    assert (DiagonalGaussianDistribution(params).kl() > 0).all()
    # KL of a distribution to itself is 0; to N(0, I) as an explicit `other` matches other=None
    p = DiagonalGaussianDistribution(torch.randn(2, 8, 3, 3))
    torch.testing.assert_close(p.kl(p), torch.zeros(2))
    torch.testing.assert_close(p.kl(DiagonalGaussianDistribution(zeros)), p.kl())


def test_logvar_clamped_and_nll() -> None:
    params = torch.zeros(1, 2, 1, 1)
    params[0, 1] = 100.0
    dist = DiagonalGaussianDistribution(params)
    assert dist.logvar.item() == 20.0 and torch.isfinite(dist.var).all()
    std_normal = DiagonalGaussianDistribution(torch.zeros(1, 2, 1, 1))
    # -log N(0; 0, 1) = 0.5 * log(2 pi)
    torch.testing.assert_close(std_normal.nll(torch.zeros(1, 1, 1, 1)), torch.tensor([0.9189385]))


def test_reparameterisation_gradients_flow() -> None:
    params = torch.randn(2, 8, 4, 4, requires_grad=True)
    z = DiagonalGaussianDistribution(params).sample(torch.Generator().manual_seed(0))
    z.sum().backward()
    assert params.grad is not None
    # d z / d mean = 1 everywhere; d z / d logvar = 0.5 * std * eps, non-zero
    assert torch.equal(params.grad[:, :4], torch.ones(2, 4, 4, 4))
    assert params.grad[:, 4:].abs().sum() > 0


def test_seeded_sample_is_deterministic() -> None:
    dist = DiagonalGaussianDistribution(torch.randn(2, 8, 4, 4))
    a = dist.sample(torch.Generator().manual_seed(7))
    b = dist.sample(torch.Generator().manual_seed(7))
    c = dist.sample(torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_vae_loss(vae: AutoencoderKL) -> None:
    x = torch.rand(2, 3, 32, 32)
    recon, posterior = vae(x, generator=torch.Generator().manual_seed(0))
    loss, logs = vae_loss(recon, x, posterior, kl_weight=1e-3)
    expected = ((recon - x) ** 2).mean() + 1e-3 * posterior.kl().mean() / (3 * 32 * 32)
    torch.testing.assert_close(loss, expected)
    assert set(logs) == {"mse", "kl", "loss"} and all(isinstance(v, float) for v in logs.values())
    loss0, logs0 = vae_loss(recon, x, posterior, kl_weight=0.0)  # the plain autoencoder
    assert logs0["loss"] == pytest.approx(logs0["mse"])
    with pytest.raises(ValueError, match="kl_weight"):
        vae_loss(recon, x, posterior, kl_weight=-1.0)
    with pytest.raises(ValueError, match="reconstruction"):
        vae_loss(recon[:, :1], x, posterior)


def test_estimate_scale_factor_gives_unit_std(vae: AutoencoderKL) -> None:
    images = torch.rand(24, 3, 32, 32) * 4.0  # large inputs, so the latents' std is not ~1
    vae.train()
    scale = estimate_scale_factor(vae, images, batch_size=10, generator=torch.Generator().manual_seed(0))
    assert vae.training  # mode restored
    vae.eval()
    with torch.no_grad():
        z = vae.encode(images).sample(torch.Generator().manual_seed(1))
    assert (scale * z).std().item() == pytest.approx(1.0, rel=0.05)
    mode_scale = estimate_scale_factor(vae, images, use_mode=True)
    with torch.no_grad():
        assert (mode_scale * vae.encode(images).mode()).std(correction=0).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="batch_size"):
        estimate_scale_factor(vae, images, batch_size=0)


def test_checkpoint_round_trip(tmp_path, vae: AutoencoderKL) -> None:
    save_model(tmp_path / "vae", vae.state_dict(), {"kind": "vae", "model": {"vae": SMALL.to_dict()}})
    config = read_config(tmp_path / "vae", expected_kind="vae")["model"]["vae"]
    fresh = load_weights(tmp_path / "vae", AutoencoderKL(VAEConfig.from_dict(config))).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fresh(x, sample_posterior=False)[0], vae(x, sample_posterior=False)[0])
    # a checkpoint of another configuration (ch=16) does not fit a ch=32 model
    with pytest.raises(ValueError, match="does not fit"):
        load_weights(tmp_path / "vae", AutoencoderKL(VAEConfig(ch=32)))


def test_config_round_trip_and_validation() -> None:
    cfg = VAEConfig(ch_mult=(1, 2), attn_in_middle=False)
    assert VAEConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="bogus"):
        VAEConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="norm_groups"):
        VAEConfig(ch=12)
    with pytest.raises(ValueError, match="ch_mult"):
        VAEConfig(ch_mult=())
    with pytest.raises(ValueError, match="z_channels"):
        VAEConfig(z_channels=0)


def test_bad_inputs(vae: AutoencoderKL) -> None:
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        vae.encode(torch.zeros(1, 1, 32, 32))  # wrong channels
    with pytest.raises(ValueError, match="divisible by 4"):
        vae.encode(torch.zeros(1, 3, 30, 32))
    with pytest.raises(ValueError, match="x must be"):
        vae.encode(torch.zeros(3, 32, 32))  # no batch axis
    with pytest.raises(ValueError, match="z_channels=4"):
        vae.decode(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="parameters"):
        DiagonalGaussianDistribution(torch.zeros(1, 3, 2, 2))  # odd channel count


def test_sd_style_config_pads_bottom_and_right_before_downsampling() -> None:
    from minildm.vae.autoencoder import AsymmetricDownsample

    cfg = VAEConfig(ch=16, ch_mult=(1, 2), norm_groups=8, downsample_padding=0, scaling_factor=0.18215)
    assert VAEConfig.from_dict(cfg.to_dict()) == cfg
    model = AutoencoderKL(cfg).eval()
    down = model.encoder.down[0].downsample
    assert isinstance(down, AsymmetricDownsample)
    x = torch.randn(1, 16, 8, 8)
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (0, 1, 0, 1)), down.op.weight, down.op.bias, stride=2
    )
    torch.testing.assert_close(down(x), expected)
    symmetric = torch.nn.functional.conv2d(x, down.op.weight, down.op.bias, stride=2, padding=1)
    assert not torch.allclose(down(x), symmetric)  # the two paddings differ
    with torch.no_grad():
        assert model.decode(model.encode(torch.zeros(1, 3, 16, 16)).mode()).shape == (1, 3, 16, 16)
    old = {"attn_in_middle": True, "ch": 16, "ch_mult": [1, 2, 4], "image_size": 32, "in_channels": 3,
           "norm_groups": 8, "num_res_blocks": 1, "out_channels": 3, "z_channels": 4}
    assert VAEConfig.from_dict(old).scaling_factor is None  # an old config: its scale is stored beside it
    bad_configs = (dict(downsample_padding=2), dict(scaling_factor=0.0), dict(norm_eps=-1.0))
    for bad, match in zip(bad_configs, ("downsample_padding", "scaling_factor", "norm_eps")):
        with pytest.raises(ValueError, match=match):
            VAEConfig(**bad)


def test_fused_attention_in_the_middle_block_gives_the_plain_numbers(vae: AutoencoderKL) -> None:
    from minildm.nn.attention import use_fused_attention

    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        plain = vae.decode(vae.encode(x).mode())
        fused = use_fused_attention(vae).decode(vae.encode(x).mode())
    use_fused_attention(vae, False)
    assert vae.decoder.mid.attn_1.fused is False
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)
