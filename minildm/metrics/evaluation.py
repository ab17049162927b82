"""Honest evaluation of a text-to-image model: prompt fidelity with error bars, CLIP score, and a
Frechet distance, in one call (:func:`evaluate`) and one table (:func:`format_report`).

Three numbers, three questions:

- **prompt fidelity** (the shapes-world judge): does each image show what its prompt says? Per kind of
  prompt (one object, partial, two objects, held-out colour-shape pairs alone and inside two-object
  scenes) and per attribute, with a 95% Wilson interval, because a rate over 64 prompts is uncertain;
- **CLIP score** (Hessel et al., 2021): ``100 * max(cos(image, caption), 0)`` in the shipped mini CLIP's
  embedding space, for the generated images and, as the reference, for real renders of the same
  captions and for real renders paired with shuffled captions;
- **Frechet distance** (:mod:`minildm.metrics.frechet`) between the mini CLIP image features of the
  generated images and of real renders of the same captions; the distance between two independent
  real renderings is the floor a perfect model would reach with this many samples.

Inception FID does not fit here: Inception-v3 expects 299 x 299 natural photographs and its features are
about ImageNet classes; our images are 32 x 32 coloured shapes on black. (Kynkäänniemi et al., 2023,
"The Role of ImageNet Classes in Fréchet Inception Distance", show that FID follows ImageNet class
content even on natural images.) So the features come from a network trained on the shapes world.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers import CLIPModel, PreTrainedTokenizerBase

from minildm.data import ShapesDataset
from minildm.data.captions import parse_caption
from minildm.metrics.frechet import frechet_distance
from minildm.metrics.judge import Judgement, judge
from minildm.metrics.prompts import PROMPT_KINDS, prompt_set
from minildm.metrics.stats import wilson_interval
from minildm.text.clip import image_embeddings, text_embeddings
from minildm.text.tokenizer import tokenize
from minildm.utils import check_positive_int, to_uint8
from minildm.validation import check_seed

#: The rows of the report: the four prompt kinds, with "heldout" split by scene kind.
REPORT_KINDS: tuple[str, ...] = ("one", "partial", "two", "heldout one", "heldout two")
ATTRIBUTES: tuple[str, ...] = ("count", "colour", "shape", "size", "position", "relation")


def evaluation_prompts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` prompts of each kind of :data:`~minildm.metrics.prompts.PROMPT_KINDS` (``4 n`` in all), and
    each prompt's report row: its kind, with held-out prompts labelled ``"heldout one"`` or
    ``"heldout two"`` by the number of objects."""
    n, seed = check_positive_int("n", n), check_seed("seed", seed)
    prompts, labels = [], []
    for kind in PROMPT_KINDS:
        for prompt in prompt_set(kind, n, seed=seed):
            prompts.append(prompt)
            labels.append(f"heldout {parse_caption(prompt).kind}" if kind == "heldout" else kind)
    return prompts, labels


def batch_seed(seed: int, index: int) -> int:
    """The sampling seed of batch ``index`` of an evaluation with ``seed`` (distinct per pair)."""
    return int(np.random.SeedSequence([check_seed("seed", seed), index]).generate_state(1)[0])


def generate(pipe, prompts: list[str], seed: int = 0, batch_size: int = 64, **pipe_kwargs) -> torch.Tensor:
    """``pipe(batch, seed=batch_seed(seed, i), progress=False, **pipe_kwargs).images`` over batches of
    ``prompts``: float images (N, 3, H, W) in [-1, 1] on the CPU, the same for the same seed."""
    seed, batch_size = check_seed("seed", seed), check_positive_int("batch_size", batch_size)
    batches = [prompts[i : i + batch_size] for i in range(0, len(prompts), batch_size)]
    images = [pipe(b, seed=batch_seed(seed, i), progress=False, **pipe_kwargs).images
              for i, b in enumerate(batches)]
    return torch.cat([x.cpu() for x in images])


@torch.no_grad()
def clip_features(clip: CLIPModel, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The mini CLIP's image embeddings of ``images`` (N, 3, H, W) in [-1, 1]: unit vectors
    [N, projection_dim], float32 on the CPU. They are the features of the Frechet distance."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor (N, 3, H, W) in [-1, 1], got {shape}")
    check_positive_int("batch_size", batch_size)
    chunks = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    return torch.cat([image_embeddings(clip, chunk).float().cpu() for chunk in chunks])


@torch.no_grad()
def clip_score(
    clip: CLIPModel,
    tokenizer: PreTrainedTokenizerBase,
    images: torch.Tensor,
    captions: list[str],
    batch_size: int = 256,
) -> torch.Tensor:
    """CLIP score of each (image, caption) pair, ``100 * max(cos(u, v), 0)`` with ``u`` the image's and
    ``v`` the caption's embedding (Hessel et al., 2021, with w = 100 as torchmetrics uses): a tensor [N]
    in [0, 100]. Take ``.mean()`` for the usual single number."""
    if len(images) != len(captions):
        raise ValueError(f"got {len(images)} images but {len(captions)} captions")
    u = clip_features(clip, images, batch_size)
    v = []
    for i in range(0, len(captions), batch_size):
        tokens = tokenize(tokenizer, list(captions[i : i + batch_size]))
        v.append(text_embeddings(clip, tokens["input_ids"], tokens["attention_mask"]).float().cpu())
    cos = (u * torch.cat(v)).sum(dim=-1)
    return 100 * cos.clamp(min=0)


def _rate(passed: int, n: int) -> dict:
    low, high = wilson_interval(passed, n)
    return {"n": n, "passed": passed, "rate": passed / n, "low": low, "high": high}


def fidelity_table(verdicts: list[Judgement], labels: list[str]) -> dict[str, dict]:
    """Pass rates per report row (and ``"all"``), each ``{n, passed, rate, low, high, attributes}``
    with a 95% Wilson interval; ``attributes`` maps each attribute the row's captions name to its rate."""
    rows = {}
    for label in (*REPORT_KINDS, "all"):
        chosen = [v for v, lab in zip(verdicts, labels) if label in ("all", lab)]
        if not chosen:
            continue
        row = _rate(sum(v.ok for v in chosen), len(chosen))
        row["attributes"] = {}
        for name in ATTRIBUTES:
            named = [v.checks[name] for v in chosen if name in v.checks]
            if named:
                row["attributes"][name] = _rate(sum(named), len(named))
        rows[label] = row
    return rows


def evaluate_images(
    images: torch.Tensor,
    prompts: list[str],
    labels: list[str],
    clip: CLIPModel,
    tokenizer: PreTrainedTokenizerBase,
    seed: int = 0,
) -> dict:
    """Everything :func:`evaluate` measures, for images already generated from ``prompts``.

    The real references are renders of the same prompts, ``ShapesDataset(captions=prompts, seed=seed,
    split="all")``, and a second independent set (``seed + 1``) for the real-vs-real floor."""
    if not (len(images) == len(prompts) == len(labels)):
        raise ValueError(f"got {len(images)} images, {len(prompts)} prompts and {len(labels)} labels")
    seed = check_seed("seed", seed)
    images = images.detach().float().cpu()
    verdicts = [judge(img, p) for img, p in zip(to_uint8(images), prompts)]
    real = ShapesDataset(captions=prompts, seed=seed, split="all").tensors()
    real_again = ShapesDataset(captions=prompts, seed=seed + 1, split="all").tensors()
    shuffled = prompts[1:] + prompts[:1]  # each real image with its neighbour's caption
    sets = {"gen": images, "real": real, "again": real_again}
    feats = {name: clip_features(clip, x) for name, x in sets.items()}
    return {
        "fidelity": fidelity_table(verdicts, labels),
        "clip_score": {
            "generated": float(clip_score(clip, tokenizer, images, prompts).mean()),
            "real": float(clip_score(clip, tokenizer, real, prompts).mean()),
            "mismatched": float(clip_score(clip, tokenizer, real, shuffled).mean()),
        },
        "frechet": {
            "generated_vs_real": frechet_distance(feats["gen"], feats["real"]),
            "real_vs_real": frechet_distance(feats["again"], feats["real"]),
            "num_samples": len(prompts),
        },
        "failures": [
            {"caption": v.caption, "failed": [a for a, ok in v.checks.items() if not ok]}
            for v in verdicts
            if not v.ok
        ],
    }


def evaluate(
    pipe,
    n: int = 64,
    seed: int = 0,
    num_inference_steps: int = 25,
    guidance_scale: float = 3.0,
    batch_size: int = 64,
    clip: CLIPModel | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    phrase_guidance: float = 0.0,
) -> dict:
    """Evaluate a text-to-image pipeline on ``n`` prompts of each kind (``4 n`` images): prompt
    fidelity per kind and attribute with Wilson intervals, CLIP score, Frechet distance (see the
    module's docstring). The same ``seed`` (and batch size) gives the same result, on the CPU exactly.

    ``clip`` and ``tokenizer`` default to the shipped mini CLIP and tokenizer. Nearly all the time goes
    to sampling (measured times: docs/results.md). The result is a dict for :func:`format_report`."""
    n, seed = check_positive_int("n", n), check_seed("seed", seed)
    num_inference_steps = check_positive_int("num_inference_steps", num_inference_steps)
    batch_size = check_positive_int("batch_size", batch_size)
    if clip is None:
        from minildm.checkpoints import load_pretrained

        clip = load_pretrained("clip", device=getattr(pipe, "device", None))[0]
    if tokenizer is None:
        from minildm.text.tokenizer import load_tokenizer

        tokenizer = load_tokenizer()
    prompts, labels = evaluation_prompts(n, seed)
    kwargs = dict(num_inference_steps=num_inference_steps, guidance_scale=guidance_scale)
    if phrase_guidance:  # composable guidance (lesson 10); only pipelines that have it take it
        kwargs["phrase_guidance"] = phrase_guidance
    images = generate(pipe, prompts, seed, batch_size, **kwargs)
    result = {
        "n": n,
        "seed": seed,
        "sampler": type(getattr(pipe, "scheduler", None)).__name__.removesuffix("Scheduler"),
        "num_inference_steps": num_inference_steps,
        "guidance_scale": float(guidance_scale),
        "phrase_guidance": float(phrase_guidance),
    }
    result.update(evaluate_images(images, prompts, labels, clip, tokenizer, seed))
    return result


def _pct(rate: dict) -> str:
    return f"{rate['rate']:6.1%}"


def format_report(result: dict) -> str:
    """The table :func:`evaluate`'s result prints as (the ``minildm evaluate`` command's output)."""
    lines = [
        f"minildm evaluate: {result['n']} prompts per kind, seed {result['seed']}, "
        f"{result['sampler']} {result['num_inference_steps']} steps, guidance {result['guidance_scale']:g}"
        + (f" + phrase guidance {result['phrase_guidance']:g}" if result.get("phrase_guidance") else ""),
        "",
        "prompt fidelity (the shapes-world judge; 95% Wilson interval)",
        f"{'kind':<12} {'n':>4} {'passed':>6} {'rate':>6}  {'95% interval':<15}  "
        + " ".join(f"{a:>8}" for a in ATTRIBUTES),
    ]
    for label, row in result["fidelity"].items():
        interval = f"[{row['low']:5.1%}, {row['high']:5.1%}]"
        cells = [_pct(row["attributes"][a]) if a in row["attributes"] else "-" for a in ATTRIBUTES]
        lines.append(
            f"{label:<12} {row['n']:>4} {row['passed']:>6} {row['rate']:>6.1%}  {interval:<15}  "
            + " ".join(f"{c:>8}" for c in cells)
        )
    clip = result["clip_score"]
    fd = result["frechet"]
    lines += [
        "",
        "CLIP score, 100 * max(cos, 0) in the mini CLIP (higher: image and caption agree)",
        f"  generated {clip['generated']:.1f} | real renders {clip['real']:.1f} | "
        f"real renders, shuffled captions {clip['mismatched']:.1f}",
        f"Frechet distance on mini CLIP image features ({fd['num_samples']} vs {fd['num_samples']} images)",
        f"  generated vs real {fd['generated_vs_real']:.4f} | "
        f"real vs real (the floor) {fd['real_vs_real']:.4f}",
    ]
    failures = result.get("failures", [])
    if failures:
        lines += ["", f"{len(failures)} failed prompts, e.g.:"]
        lines += [f"  {f['caption']!r}: {', '.join(f['failed'])}" for f in failures[:5]]
    return "\n".join(lines)
