"""One quality line per checkpoint kind, so that a retrained checkpoint can be set beside the shipped
one (``make checkpoints``, :mod:`minildm.retrain`). Each figure is the one its lesson reports:

- ``toy2d`` (lesson 02): samples within 3 standard deviations of a peak, and the share on the left
  peak (the data: 100% and 50%);
- ``vae`` (lesson 04): the judge on reconstructions of held-out renders, and their mean PSNR;
- ``pixel_ddpm`` (03) and ``latent_ddpm`` (05): samples that are one clean object;
- ``clip`` (06): text -> image and image -> text top-1 retrieval among held-out renders;
- ``text2img`` (the default, lesson 11's DiT; 10, 11) and ``text2img_unet`` (the U-Net; 06, 09): prompt
  fidelity by the judge, all kinds and two objects (``evaluate``).

Every figure comes with its sample size; the same arguments give the same figures on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import torch

from minildm.names import CHECKPOINTS
from minildm.utils import check_positive_int, get_device

#: held-out renders (another seed than any training set; held-out colour-shape pairs included)
HELD_OUT_SEED = 12345


def psnr(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per image, in dB, on [0, 1] pixel values rounded to uint8 as saved images are (lesson 04's
    definition; ``bench/latent_diffusion.py`` reports it too)."""

    def quantise(x: torch.Tensor) -> torch.Tensor:
        return ((x.clamp(-1, 1) + 1) * 127.5).round() / 255

    mse = ((quantise(images) - quantise(reference)) ** 2).mean(dim=(1, 2, 3))
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


@torch.no_grad()
def toy2d_quality(folder: Path, n: int, device: torch.device) -> dict[str, str]:
    from minildm.checkpoints import load_pretrained
    from minildm.data.toy2d import PEAK_CENTRES
    from minildm.sampling import Sampler

    model, scheduler, _ = load_pretrained("toy2d", folder, device=device)
    points = Sampler().sample(model, (n, 2), scheduler, 100, generator=torch.Generator().manual_seed(0),
                              device=device, progress=False).cpu()
    centres = torch.tensor(PEAK_CENTRES)
    nearest = torch.cdist(points, centres).min(dim=1)
    near = (nearest.values < 3 * 0.3).float().mean().item()
    left = (nearest.indices == 0).float().mean().item()
    return {"near a peak": f"{near:.1%}", "left peak": f"{left:.1%}", "n": str(n)}


@torch.no_grad()
def vae_quality(folder: Path, n: int, device: torch.device) -> dict[str, str]:
    from minildm.checkpoints import load_vae
    from minildm.data import ShapesDataset
    from minildm.metrics.judge import score

    vae, _ = load_vae(folder, device=device)
    held_out = ShapesDataset(n, seed=HELD_OUT_SEED, split="all")
    x = held_out.tensors()
    recon = torch.cat([vae.decode(vae.encode(x[i : i + 250].to(device)).mode()).cpu()
                       for i in range(0, len(x), 250)]).clamp(-1, 1)
    result = score(recon, held_out.captions)
    return {"judge": f"{result['score']:.1%}", "PSNR": f"{psnr(recon, x).mean():.1f} dB", "n": str(n)}


@torch.no_grad()
def _clean(images: torch.Tensor, n: int) -> dict[str, str]:
    from minildm.metrics.judge import clean_object_report

    return {"one clean object": f"{clean_object_report(images)['clean']:.1%}", "n": str(n)}


def pixel_ddpm_quality(folder: Path, n: int, device: torch.device) -> dict[str, str]:
    from minildm.checkpoints import load_pretrained
    from minildm.sampling import Sampler

    model, scheduler, _ = load_pretrained("pixel_ddpm", folder, device=device)
    images = torch.cat([
        Sampler().sample(model, (min(64, n - i), 3, 32, 32), scheduler, 50,
                         generator=torch.Generator().manual_seed(i), device=device, progress=False).cpu()
        for i in range(0, n, 64)
    ])
    return _clean(images, n)


def latent_ddpm_quality(
    folder: Path, n: int, device: torch.device, vae: Path | None = None
) -> dict[str, str]:
    from minildm.pipelines import LatentDiffusionPipeline

    pipe = LatentDiffusionPipeline.from_pretrained(folder, vae_path=vae, device=device)
    images = torch.cat([pipe(min(64, n - i), 50, seed=i, progress=False).images.cpu()
                        for i in range(0, n, 64)])
    return _clean(images, n)


@torch.no_grad()
def clip_quality(folder: Path, n: int, device: torch.device) -> dict[str, str]:
    from minildm.checkpoints import load_pretrained
    from minildm.data import ShapesDataset
    from minildm.text.clip import retrieval_accuracy
    from minildm.text.tokenizer import load_tokenizer

    model, _, _ = load_pretrained("clip", folder, device=device)
    held_out = ShapesDataset(n, seed=HELD_OUT_SEED, split="all", two_object_fraction=0.5)
    acc = retrieval_accuracy(model, held_out.tensors().to(device), held_out.captions, load_tokenizer())
    return {"text->image": f"{acc['text_to_image']:.1%}", "image->text": f"{acc['image_to_text']:.1%}",
            "n": str(n)}


def text2img_quality(
    folder: Path, n: int, device: torch.device, vae: Path | None = None, clip: Path | None = None
) -> dict[str, str]:
    from minildm.checkpoints import load_pretrained
    from minildm.metrics.evaluation import evaluate
    from minildm.pipelines import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(folder, vae_path=vae, text_encoder_path=clip, device=device)
    clip_model = load_pretrained("clip", clip, device=device)[0]
    per_kind = max(1, n // 4)
    result = evaluate(pipe, n=per_kind, seed=0, clip=clip_model, num_inference_steps=pipe.default_steps,
                      guidance_scale=pipe.default_guidance)  # a distilled student samples its own way
    fidelity = result["fidelity"]
    return {"all prompts": f"{fidelity['all']['rate']:.1%}", "two objects": f"{fidelity['two']['rate']:.1%}",
            "n": f"{per_kind}/kind"}


#: the figures by the name a shipped checkpoint's record gives (:attr:`minildm.names.Checkpoint.quality`);
#: the text-to-image ones (text2img, text2img_unet, lcm) each at its own default sampling
QUALITY = {
    "toy2d": toy2d_quality,
    "vae": vae_quality,
    "pixel_ddpm": pixel_ddpm_quality,
    "latent_ddpm": latent_ddpm_quality,
    "clip": clip_quality,
    "text2img": text2img_quality,
}


def checkpoint_quality(
    kind: str,
    folder: str | Path | None = None,
    n: int | None = None,
    device: str | torch.device | None = None,
    vae: str | Path | None = None,
    clip: str | Path | None = None,
) -> dict[str, str]:
    """The quality figures of the shipped checkpoint ``kind`` (a folder of data/checkpoints), of the
    one in ``folder`` when given, as ``{"name": "value", ..., "n": "sample size"}``; ``n`` defaults to
    its record's (:data:`minildm.names.CHECKPOINTS`); ``vae`` and ``clip`` are the checkpoints a latent
    model was trained with (default the shipped ones)."""
    from minildm.checkpoints import checkpoint_folder

    if kind not in CHECKPOINTS:
        raise ValueError(f"kind must be one of {list(CHECKPOINTS)}, got {kind!r}")
    shipped = CHECKPOINTS[kind]
    n = shipped.quality_n if n is None else check_positive_int("n", n)
    given = {"vae": (shipped.vae, vae), "clip": (shipped.text_encoder, clip)}  # (trained on?, given)
    extra = {name: None if path is None else Path(path) for name, (dep, path) in given.items() if dep}
    return QUALITY[shipped.quality](checkpoint_folder(kind, folder), n, get_device(device), **extra)
