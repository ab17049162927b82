"""Evaluation: the Frechet distance against closed forms, the CLIP score on real renders, and
evaluate() / format_report() on a tiny run, plus bad input."""

import math

import numpy as np
import pytest
import torch

from minildm.checkpoints import load_pretrained
from minildm.data import ShapesDataset
from minildm.metrics.evaluation import REPORT_KINDS, clip_features, clip_score, evaluate, format_report
from minildm.metrics.frechet import (
    frechet_distance,
    frechet_distance_from_stats,
    gaussian_stats,
    sqrtm_psd,
)
from minildm.metrics.prompts import prompt_set
from minildm.pipelines import TextToImagePipeline
from minildm.text import load_tokenizer


def _random_orthogonal(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q


def _gaussian_samples(mu, cov, n, seed) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(cov)
    return mu + torch.randn(n, len(mu), generator=g, dtype=torch.float64) @ chol.T


# ------------------------------------------------------------------ Frechet distance


def test_closed_form_commuting_covariances():
    # S_a = Q diag(a) Q^T and S_b = Q diag(b) Q^T commute, so
    # Tr(S_a + S_b - 2 (S_a S_b)^1/2) = sum_i (sqrt a_i - sqrt b_i)^2
    d = 6
    q = _random_orthogonal(d, 0)
    a = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.1, 4.0], dtype=torch.float64)
    b = torch.tensor([1.5, 1.0, 0.2, 5.0, 0.4, 1.0], dtype=torch.float64)
    mu_a, mu_b = torch.zeros(d, dtype=torch.float64), torch.arange(d, dtype=torch.float64) / 3
    expected = float((mu_a - mu_b).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())
    for rotation in (torch.eye(d, dtype=torch.float64), q):  # diagonal, then a common rotation
        s_a, s_b = rotation @ torch.diag(a) @ rotation.T, rotation @ torch.diag(b) @ rotation.T
        assert frechet_distance_from_stats(mu_a, s_a, mu_b, s_b) == pytest.approx(expected, rel=1e-10)


def test_closed_form_non_commuting_2d():
    # for 2 x 2 matrices, Tr sqrt(X) = sqrt(Tr X + 2 sqrt(det X)) (X with non-negative eigenvalues)
    s_a = torch.tensor([[2.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    s_b = torch.tensor([[1.0, -0.4], [-0.4, 1.5]], dtype=torch.float64)
    assert not torch.allclose(s_a @ s_b, s_b @ s_a)
    prod = s_a @ s_b
    tr_sqrt = math.sqrt(float(torch.trace(prod)) + 2 * math.sqrt(float(torch.linalg.det(prod))))
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64)
    expected = 1.0 + 4.0 + float(torch.trace(s_a) + torch.trace(s_b)) - 2 * tr_sqrt
    assert frechet_distance_from_stats(mu, s_a, torch.zeros(2, dtype=torch.float64), s_b) == pytest.approx(
        expected, rel=1e-10
    )


def test_frechet_distance_from_samples_approaches_the_closed_form():
    a = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    b = torch.tensor([2.0, 0.5, 1.0], dtype=torch.float64)
    mu_b = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    expected = 1.0 + float((a.sqrt() - b.sqrt()).pow(2).sum())  # 1 + 2 (sqrt 2 - sqrt 0.5)^2 = 2
    x = _gaussian_samples(torch.zeros(3, dtype=torch.float64), torch.diag(a), 200_000, 0)
    y = _gaussian_samples(mu_b, torch.diag(b), 200_000, 1)
    assert frechet_distance(x, y) == pytest.approx(expected, abs=0.03)
    assert frechet_distance(x.float().numpy(), y.numpy()) == pytest.approx(frechet_distance(x, y), rel=1e-5)


def test_frechet_distance_properties():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=g) * torch.linspace(0.2, 2, 8)
    y = torch.randn(200, 8, generator=g) + 0.5
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-9)
    shift = torch.randn(8, generator=g) * 10
    assert frechet_distance(x + shift, y + shift) == pytest.approx(frechet_distance(x, y), rel=1e-6)
    assert frechet_distance(x, y) > 0.1


def test_gaussian_stats_and_sqrtm():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mu, sigma = gaussian_stats(x)
    torch.testing.assert_close(mu, x.mean(0))
    torch.testing.assert_close(sigma, torch.cov(x.T))
    root = sqrtm_psd(sigma)
    torch.testing.assert_close(root @ root, sigma)
    torch.testing.assert_close(root, root.T)


def test_frechet_bad_input():
    x = torch.randn(10, 4)
    with pytest.raises(ValueError, match="features_a and features_b must have the same width"):
        frechet_distance(x, torch.randn(10, 5))
    with pytest.raises(ValueError, match="features_b needs at least 2 samples"):
        frechet_distance(x, torch.randn(1, 4))
    with pytest.raises(ValueError, match="features_a needs at least 2 samples"):
        frechet_distance(torch.randn(1, 4), x)
    with pytest.raises(ValueError, match="features_a must be 2-D"):
        frechet_distance(torch.randn(10), x)
    with pytest.raises(ValueError, match="features_b hold NaN"):
        frechet_distance(x, torch.full((10, 4), float("nan")))
    with pytest.raises(ValueError, match="features_a must be a tensor or array"):
        frechet_distance([[1.0, 2.0]], x)
    with pytest.raises(ValueError, match="features needs at least 2 samples"):
        gaussian_stats(np.zeros((1, 3)))


# ------------------------------------------------------------------ CLIP score and features


@pytest.fixture(scope="module")
def clip():
    return load_pretrained("clip", device="cpu")[0]


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


def test_clip_score_prefers_matching_captions(clip, tokenizer):
    captions = prompt_set("one", 24, seed=5) + prompt_set("two", 24, seed=5)
    real = ShapesDataset(captions=captions, seed=0).tensors()
    matching = clip_score(clip, tokenizer, real, captions)
    shuffled = clip_score(clip, tokenizer, real, captions[7:] + captions[:7])
    assert matching.shape == (48,) and bool(((matching >= 0) & (matching <= 100)).all())
    assert float(matching.mean()) > float(shuffled.mean()) + 20
    features = clip_features(clip, real, batch_size=10)
    assert features.shape == (48, clip.config.projection_dim) and features.dtype == torch.float32
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(48))
    with pytest.raises(ValueError, match="got 48 images but 47 captions"):
        clip_score(clip, tokenizer, real, captions[1:])
    with pytest.raises(ValueError, match="images must be a float tensor"):
        clip_features(clip, real[0])


# ------------------------------------------------------------------ evaluate and the report


@pytest.fixture(scope="module")
def pipe():
    return TextToImagePipeline.from_pretrained(device="cpu")


def test_evaluate_is_deterministic_and_reports_every_kind(pipe, clip, tokenizer):
    kwargs = dict(num_inference_steps=3, batch_size=5, clip=clip, tokenizer=tokenizer)
    first = evaluate(pipe, 2, seed=3, **kwargs)
    assert first == evaluate(pipe, 2, seed=3, **kwargs)
    assert set(first["fidelity"]) == {*REPORT_KINDS, "all"}
    assert first["fidelity"]["all"]["n"] == 8
    assert sum(first["fidelity"][k]["n"] for k in REPORT_KINDS) == 8
    for row in first["fidelity"].values():
        assert 0 <= row["low"] <= row["rate"] <= row["high"] <= 1
    assert first["frechet"]["num_samples"] == 8 and first["frechet"]["real_vs_real"] >= 0
    report = format_report(first)
    for kind in (*REPORT_KINDS, "all"):
        assert f"\n{kind} " in report
    assert "CLIP score" in report and "Frechet distance" in report and "real vs real" in report
    other = evaluate(pipe, 2, seed=4, **kwargs)
    assert other["failures"] != first["failures"] or other["clip_score"] != first["clip_score"]


def test_evaluate_bad_input(pipe, clip, tokenizer):
    with pytest.raises(ValueError, match="n must be a positive int"):
        evaluate(pipe, 0, clip=clip, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="seed must be an int"):
        evaluate(pipe, 1, seed=-1, clip=clip, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        evaluate(pipe, 1, batch_size=0, clip=clip, tokenizer=tokenizer)
