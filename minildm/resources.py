"""How much memory a command will need, estimated before any work, against what the machine has.

A batch size of 100,000,000 would not fail at once: the process grows until the operating system kills
it (or the laptop freezes). The commands estimate the memory first, from the bytes one example costs,
and refuse what cannot fit, saying the estimate.

The per-example figures are peak-memory increments measured on a CPU (``ru_maxrss`` of one training
step at batch 64 and 256, of sampling 64 and 256 images, of building the data at 4,000 images), rounded
up. They are rough: a lower bound for the model's share, so that what is refused would not have fit.
"""

from __future__ import annotations

import os

import torch

#: bytes one example adds to a training step (forward, backward), per kind (measured: 4 KB, 10.4 MB,
#: 3.9 MB, 1.7 MB, 0.8 MB, 4.0 MB, 2.0 MB)
TRAIN_BYTES_PER_EXAMPLE = {
    "toy2d": 8_000,
    "pixel_ddpm": 11_000_000,
    "vae": 4_000_000,
    "latent_ddpm": 2_000_000,
    "clip": 1_000_000,
    "text2img": 4_000_000,
    "lcm": 2_000_000,
}
#: bytes one training image costs in memory (the rendered image, its scene and caption, its latents;
#: measured 27 KB to 47 KB)
DATA_BYTES_PER_IMAGE = 50_000
#: bytes one image costs when sampled in one batch (the guided batch is twice as large; measured
#: 0.6 MB to 1.7 MB) and in the captioned figure (measured 0.1 MB to 0.8 MB)
SAMPLE_BYTES_PER_IMAGE = 1_000_000
FIGURE_BYTES_PER_IMAGE = 500_000
#: bytes one evaluation prompt keeps until the report (its image, a real render, features; a bound)
EVALUATION_BYTES_PER_PROMPT = 100_000


def format_bytes(n: float) -> str:
    """``1.5 GB``, ``300 MB``, ``4e+03 PB``: a size people read (three significant digits)."""
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} bytes"


def available_memory(device: str | torch.device = "cpu") -> tuple[int, str] | None:
    """The bytes a computation on ``device`` may still use, and where: a CUDA GPU's free memory,
    else the machine's available RAM (``MemAvailable`` on Linux, else the physical RAM); ``None``
    where the system does not say."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        return int(free), f"free on {device}"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available RAM"
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "RAM"
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(what: str, needed: float, device: str | torch.device, advice: str) -> None:
    """A ValueError, saying the estimate, when ``needed`` bytes exceed the memory ``device`` has."""
    available = available_memory(device)
    if available is None or needed <= available[0]:
        return
    have, where = available
    raise ValueError(
        f"{what} needs about {format_bytes(needed)} of memory (a rough estimate), more than the "
        f"{format_bytes(have)} of {where}; {advice}"
    )


def training_bytes(kind: str, batch_size: int, data_size: int | None = None) -> float:
    """The estimated peak memory of a training step of ``kind`` at ``batch_size`` (per process),
    with ``data_size`` training images held."""
    per_example = TRAIN_BYTES_PER_EXAMPLE.get(kind, max(TRAIN_BYTES_PER_EXAMPLE.values()))
    return float(batch_size) * per_example + float(data_size or 0) * DATA_BYTES_PER_IMAGE


def sampling_bytes(count: int, figure: bool = True) -> float:
    """The estimated memory of sampling ``count`` images in one batch (and of their figure)."""
    return float(count) * (SAMPLE_BYTES_PER_IMAGE + (FIGURE_BYTES_PER_IMAGE if figure else 0))


def evaluation_bytes(prompts: int) -> float:
    """The estimated memory of evaluating ``prompts`` prompts (kept until the report)."""
    return float(prompts) * EVALUATION_BYTES_PER_PROMPT
