"""``python -m minildm demo``: one picture of what the course builds, a row per lesson.

1. the shapes world: captioned images, each judged against its caption (lesson 00);
2. one image taken through the forward process q(x_t | x_0) (lesson 01);
3. images sampled from noise by the pixel-space DDPM (lesson 03) and
4. by the latent diffusion model (lesson 05);
5. prompts turned into pictures by the default text-to-image model (lesson 06's recipe on lesson 11's
   DiT, which composes best: lesson 10) with DDIM (lesson 07), each marked by the judge.

Each row is one small function returning ``(images, titles)``; :func:`demo` lays them out.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch

DEMO_TIMESTEPS = (0, 50, 100, 200, 300, 500, 700, 999)
DEMO_PROMPTS = (
    "a large red circle in the top left",
    "a small blue square in the bottom right",
    "a large green triangle in the center",
    "a yellow square in the top right",
    "a red circle to the left of a blue square",
    "a green triangle above a magenta circle",
    "a cyan square below a yellow triangle",
    "a blue triangle in the center",
)

Row = tuple[np.ndarray, list[str]]


def wrap(text: str, width: int = 20) -> str:
    return "\n".join(textwrap.wrap(text, width))


def shapes_world_row(seed: int) -> tuple[Row, float, torch.Tensor]:
    """Twelve training images with their captions, the judge's score on them, and the first
    image as a float tensor (for the forward-process row)."""
    from minildm.data import ShapesDataset
    from minildm.metrics import score

    data = ShapesDataset(12, seed=seed, two_object_fraction=0.34)
    verdict = score(data.images, data.captions)["score"]
    return (data.images, [wrap(c) for c in data.captions]), verdict, data[0][0]


def forward_process_row(image: torch.Tensor, generator: torch.Generator) -> Row:
    """``image`` noised by $q(x_t \\mid x_0)$ (linear schedule) at ``DEMO_TIMESTEPS``."""
    from minildm.diffusion import add_noise
    from minildm.schedules import NoiseSchedule
    from minildm.utils import to_uint8

    x0 = image.expand(len(DEMO_TIMESTEPS), -1, -1, -1)
    noise = torch.randn(x0.shape, generator=generator)
    alphas_cumprod = NoiseSchedule("linear").alphas_cumprod
    noisy = add_noise(x0, noise, torch.tensor(DEMO_TIMESTEPS), alphas_cumprod)
    return to_uint8(noisy), [f"t = {t}" for t in DEMO_TIMESTEPS]


def pixel_samples_row(generator: torch.Generator) -> Row:
    """Eight samples of lesson 03's pixel-space DDPM (50 steps)."""
    from minildm.checkpoints import load_pretrained
    from minildm.sampling import Sampler
    from minildm.utils import to_uint8

    model, scheduler, _ = load_pretrained("pixel_ddpm", device="cpu")
    samples = Sampler().sample(model, (8, 3, 32, 32), scheduler, 50, generator=generator, progress=False)
    return to_uint8(samples), ["lesson 03, pixels:"] + ["sampled"] * 7


def latent_samples_row(seed: int) -> Row:
    """Eight samples of lesson 05's latent diffusion model (50 steps)."""
    from minildm.pipelines import LatentDiffusionPipeline
    from minildm.utils import to_uint8

    pipe = LatentDiffusionPipeline.from_pretrained(device="cpu")
    return to_uint8(pipe(8, 50, seed=seed, progress=False).images), ["lesson 05, latents:"] + ["sampled"] * 7


def prompted_row(seed: int) -> tuple[Row, int]:
    """``DEMO_PROMPTS`` turned into pictures, each marked ✓/✗ by the judge; and how many passed."""
    from minildm.metrics import judge
    from minildm.pipelines import TextToImagePipeline
    from minildm.utils import to_uint8

    pipe = TextToImagePipeline.from_pretrained(device="cpu")
    images = to_uint8(pipe(list(DEMO_PROMPTS), seed=seed, progress=False).images)
    followed = [judge(image, prompt).ok for image, prompt in zip(images, DEMO_PROMPTS)]
    titles = [("✓ " if ok else "✗ ") + wrap(p, 18) for ok, p in zip(followed, DEMO_PROMPTS)]
    return (images, titles), sum(followed)


def _draw_row(fig, grid, row: int, panel: Row, fontsize: float, first_column: int = 0) -> None:
    for column, (image, title) in enumerate(zip(*panel), start=first_column):
        ax = fig.add_subplot(grid[row, column])
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=fontsize)
        ax.axis("off")


def demo(output: Path, seed: int = 0) -> Path:
    """Draw the demo picture (every row above; the CPU takes seconds) to ``output``, atomically.
    Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minildm.utils import save_figure, seed_everything

    generator = seed_everything(seed)
    world, world_score, first_image = shapes_world_row(seed)
    noisy = forward_process_row(first_image, generator)
    pixels = pixel_samples_row(generator)
    latents = latent_samples_row(seed)
    prompted, passed = prompted_row(seed)

    fig = plt.figure(figsize=(11, 11))
    grid = fig.add_gridspec(6, 8, hspace=0.55)
    _draw_row(fig, grid, 0, (world[0][:6], world[1][:6]), 7, first_column=1)
    _draw_row(fig, grid, 1, (world[0][6:], world[1][6:]), 7, first_column=1)
    for row, panel in ((2, noisy), (3, pixels), (4, latents)):
        _draw_row(fig, grid, row, panel, 8)
    _draw_row(fig, grid, 5, prompted, 6.5)
    fig.suptitle(
        f"The shapes world (judge: {world_score:.0%} of captions satisfied), the forward "
        f"process q(x_t | x_0) (linear schedule, T = 1000),\nand new images sampled "
        "from noise by the pixel-space DDPM of lesson 03 and the latent diffusion model of lesson 05;\n"
        f"bottom row: prompts turned into pictures by lesson 11's DiT ({passed} of {len(DEMO_PROMPTS)} "
        "judged to follow their prompt)",
        fontsize=10,
    )
    path = save_figure(fig, output, dpi=110)
    plt.close(fig)
    return path
