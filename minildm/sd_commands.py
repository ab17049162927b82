"""The command line with a real Stable Diffusion checkpoint: what :mod:`minildm.commands` asks when
``--checkpoint`` names an SD folder (diffusers' layout) or an original ``.safetensors`` file.

    minildm generate "an astronaut riding a horse" --checkpoint sd15 --height 512 --width 512

Everything is checked before a weight is read: the checkpoint is a local folder or file (nothing is
downloaded; a Hugging Face id is answered with the one command that fetches it, online), not a
pickle; the size is a multiple of what the VAE and the U-Net divide by (read from their configs);
float16 is asked for on a GPU only. An SD checkpoint gets SD's defaults (guidance 7.5, 25 steps, the
size of its U-Net config, the sampler of its ``scheduler_config.json``); the course's checkpoints
keep theirs, and the caption grammar keeps applying to a model that carries the word-level tokenizer.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

#: Stable Diffusion's defaults on the command line: diffusers' guidance, and DDIM's 25 steps
#: (lesson 07: as good as far more DDPM steps)
SD_STEPS = 25
SD_GUIDANCE = 7.5
#: what a Hugging Face model id looks like ("owner/name"): answered with how to download it
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def checkpoint_kind(path: Path | None) -> str:
    """``"minildm"`` for the shipped default or a minildm checkpoint folder, ``"sd"`` for a Stable
    Diffusion folder or ``.safetensors`` file; anything else is refused in one line naming
    ``--checkpoint`` (a missing path, a model id, a pickle, a folder that is neither)."""
    if path is None:
        return "minildm"
    from minildm.stable_diffusion import is_stable_diffusion
    from minildm.stable_diffusion.loading import PICKLE_SUFFIXES

    text = str(path)
    if not path.exists():
        if HUB_ID.fullmatch(text):
            local = text.split("/")[1]
            raise FileNotFoundError(
                f"--checkpoint {text!r} is not a folder here, and nothing is downloaded: a local folder is "
                f"needed (a Hugging Face model id? fetch it once, online: hf download {text} --local-dir "
                f"{local}; then --checkpoint {local})"
            )
        raise FileNotFoundError(
            f"--checkpoint {text!r}: no such folder or file; a local folder is needed (a minildm checkpoint "
            "or a Stable Diffusion folder in diffusers' layout) or an SD .safetensors file"
        )
    if path.is_file():
        if path.suffix in PICKLE_SUFFIXES:
            raise ValueError(
                f"--checkpoint {text!r}: a pickle checkpoint ({path.suffix}) can run code when it is opened "
                "and is not read; expected a .safetensors file or a diffusers folder"
            )
        if path.suffix != ".safetensors":
            raise ValueError(f"--checkpoint {text!r} is a file; expected a folder (a minildm checkpoint or "
                             "a Stable Diffusion folder) or an SD .safetensors file")
        return "sd"
    try:
        return "sd" if is_stable_diffusion(path) else "minildm"
    except FileNotFoundError as err:  # "PATH is neither a minildm checkpoint ... nor ..."
        said = str(err)
        raise FileNotFoundError(f"--checkpoint {text!r}{said[len(text):]}" if said.startswith(text)
                                else f"--checkpoint {said}") from err


def _size_rules(folder: Path) -> tuple[int, int, int]:
    """(default side, multiple, VAE factor f) in pixels, from an SD folder's U-Net and VAE configs
    (no weight read): the side is the U-Net's sample size times f, as in diffusers."""
    from minildm.stable_diffusion.configs import unet_config_from_diffusers, vae_config_from_diffusers
    from minildm.stable_diffusion.loading import read_json

    unet = unet_config_from_diffusers(read_json(folder / "unet" / "config.json"), folder / "unet")
    vae = vae_config_from_diffusers(read_json(folder / "vae" / "config.json"), folder / "vae")
    f = vae.downsample_factor
    return unet.image_size * f, f * unet.downsample_factor, f


def check_size(flag: str, value: int, multiple: int, f: int) -> None:
    """``--height`` / ``--width``: a multiple of what the VAE and the U-Net divide by."""
    if value % multiple:
        nearest = max(multiple, round(value / multiple) * multiple)
        raise ValueError(
            f"{flag} {value}: this Stable Diffusion model draws sizes that are multiples of {multiple} (its "
            f"VAE shrinks by {f}, its U-Net by {multiple // f} more), e.g. {nearest}"
        )


def _refuse_sd_only_options(args: argparse.Namespace) -> None:
    """The options that mean something for a Stable Diffusion checkpoint only."""
    options = (("--tokenizer", args.tokenizer), ("--height", getattr(args, "height", None)),
               ("--width", getattr(args, "width", None)))
    given = [flag for flag, value in options if value is not None]
    if args.dtype == "float16":
        given.append("--dtype float16")
    if given:
        raise ValueError(
            f"{given[0]} applies to Stable Diffusion checkpoints (--checkpoint an SD folder or .safetensors "
            "file); the course's models work in float32 at their training size (32 x 32)"
        )


def check_checkpoint_args(args: argparse.Namespace) -> bool:
    """Classify ``--checkpoint`` and check the options that depend on it, before anything loads:
    True for a Stable Diffusion checkpoint, False for one of the course's."""
    from minildm.stable_diffusion.precision import check_dtype
    from minildm.utils import check_positive_int, get_device

    if checkpoint_kind(args.checkpoint) != "sd":
        _refuse_sd_only_options(args)
        return False
    check_dtype(args.dtype or "float32", get_device(args.device))
    single = args.checkpoint.is_file()
    if single and args.tokenizer is None:
        raise ValueError(f"--checkpoint {str(args.checkpoint)!r} is a single file, which holds no tokenizer: "
                         "pass --tokenizer DIR (a folder with CLIP's tokenizer, e.g. an SD folder)")
    if not single and args.tokenizer is not None:
        raise ValueError(f"--tokenizer applies to a single-file --checkpoint; the folder "
                         f"{str(args.checkpoint)!r} holds its own tokenizer")
    if args.tokenizer is not None and not args.tokenizer.is_dir():
        raise FileNotFoundError(f"--tokenizer {str(args.tokenizer)!r}: no such folder; expected a folder "
                                "with CLIP's tokenizer (vocab.json, merges.txt), e.g. an SD folder")
    for flag in ("--height", "--width"):
        value = getattr(args, flag[2:], None)
        if value is not None:
            check_positive_int(flag, value)
            if not single:  # (a single file's configs are known once it is read: checked after loading)
                check_size(flag, value, *_size_rules(args.checkpoint)[1:])
    return True


def sampler_name(scheduler) -> str:
    """The ``--sampler`` name of ``scheduler`` (SD's folders name theirs in scheduler_config.json)."""
    from minildm.schedulers import SCHEDULERS

    return next(name for name, cls in SCHEDULERS.items() if type(scheduler) is cls)


def load_sd_pipeline(cls, args: argparse.Namespace):
    """The SD checkpoint as ``cls`` (a text-to-image, img2img or inpainting pipeline): ``--sampler``
    on the folder's schedule (default: its scheduler_config.json's), the U-Net in float16 with
    ``--dtype float16``; a given ``--height``/``--width`` checked against the loaded model (the command
    fills the unset options with SD's defaults)."""
    from minildm.stable_diffusion import load_components
    from minildm.stable_diffusion.precision import HalfPrecisionUNet

    pipe = cls(**load_components(args.checkpoint, args.tokenizer, args.device, sampler=args.sampler))
    pipe.strict = not args.no_strict  # (the grammar applies when the checkpoint carries our tokenizer)
    if args.dtype == "float16":
        pipe.backbone = HalfPrecisionUNet(pipe.backbone)
    for flag in ("--height", "--width"):  # generate's (checked already for a folder; a single file's
        value = getattr(args, flag[2:], None)  # rules are known now)
        if value is not None:
            check_size(flag, value, pipe.size_multiple, pipe.vae.config.downsample_factor)
    return pipe


def load_sd_inputs(args: argparse.Namespace, inpaint: bool):
    """img2img's / inpainting's IMAGE (and MASK) for an SD checkpoint, read before the model: a square
    picture of its own size (a multiple of what the model divides by, checked once it is loaded)."""
    from PIL import Image

    from minildm.imageio import load_image, load_mask

    try:
        with Image.open(args.image) as im:
            width, height = im.size
    except (OSError, ValueError):
        width = height = 512  # (not a readable image: load_image says why, naming it)
    if width != height:
        raise ValueError(f"IMAGE {str(args.image)!r} is {width} x {height}; Stable Diffusion edits a square "
                         "picture here: crop or pad it to a square")
    image = load_image(args.image, width)
    if args.checkpoint.is_dir():  # (a single file's rules are known once it is read: check_sd_image)
        _, multiple, f = _size_rules(args.checkpoint)
        check_sd_image(image, multiple, f, f"IMAGE {str(args.image)!r}")
    return image, (load_mask(args.mask, width) if inpaint else None)


def check_sd_image(image, multiple: int, f: int, what: str = "IMAGE") -> None:
    """The image's side must be a multiple of what the VAE (``f``) and the U-Net divide by."""
    side = image.shape[-1]
    if side % multiple:
        raise ValueError(
            f"{what} is {side} x {side}: this Stable Diffusion model works on sizes that are multiples of "
            f"{multiple} (its VAE shrinks by {f}, its U-Net by {multiple // f} more)"
        )


def short_titles(prompts: list[str], most: int = 40) -> list[str]:
    """A figure's titles: each prompt, its start and "..." when longer than ``most`` characters."""
    return [p if len(p) <= most else p[: most - 3] + "..." for p in prompts]
