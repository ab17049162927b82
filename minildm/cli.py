"""The ``minildm`` command (also ``python -m minildm``): parse the arguments, dispatch to
:mod:`minildm.commands`.

minildm demo [-o outputs/demo.png]     the shapes world, the forward process, samples of lessons 03-07
minildm train {toy2d,pixel_ddpm,vae,latent_ddpm,clip,text2img,lcm} [--budget quick|full] [--resume] ...
minildm generate "a large red circle in the top left" [more prompts] [-o FIGURE.png] [--save-dir DIR]
minildm img2img IMAGE "PROMPT" [...] [--strength S] [--init I]  edit an image toward a prompt (lesson 08)
minildm inpaint IMAGE MASK "PROMPT" [...]              repaint where MASK is white (lesson 08)
minildm evaluate [--n 64] [--seed 0]   fidelity per kind, CLIP score, Frechet distance (lesson 09)
minildm tokenizer [-o data/tokenizer]  build the word-level tokenizer from the caption grammar
minildm generate "an astronaut riding a horse" --checkpoint sd15 [--height 512 --width 512] [--fp16]
                                       a local Stable Diffusion folder (img2img and inpaint too)
minildm retrain [--only KIND ...]      retrain every shipped checkpoint, compare it with the shipped one
minildm classroom {student,check-student,site,teaching}   the student notebooks, sites, teacher's guide

Errors are one line (``minildm: error: ...``; exit 2 for bad usage, 1 otherwise); ``--debug``
or ``MINILDM_DEBUG=1`` shows the Python traceback instead (for ``retrain``: ``MINILDM_DEBUG=1``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

# the names and defaults the library uses too, from their torch-free home: ``--help`` loads no model code
from minildm.names import (
    BACKBONES,
    BUDGETS,
    CONSISTENCY_LOSSES,
    DEFAULT_RESAMPLE,
    DEFAULT_STRENGTH,
    DTYPES,
    IMG2IMG_INITS,
    PRESETS,
    SAMPLER_NAMES,
    TRAIN_ALIASES,
    TRAIN_KINDS,
)

#: the commands that are programs of their own: ``minildm NAME ARGS`` runs ``main(ARGS)`` of the module
#: (also ``python -m minildm.retrain`` and ``python -m minildm.classroom``)
PROGRAMS = {
    "retrain": ("minildm.retrain", "retrain every shipped checkpoint in order, then compare each with the "
                "shipped one (make checkpoints)"),
    "classroom": ("minildm.classroom.cli", "the student notebooks, the offline course sites, the teacher's "
                  "guide"),
}


def _debug() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    return p


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, parents=[_debug()])
    common.add_argument("--seed", type=int, default=0, help="non-negative int (default 0)")
    return common


def _sampling() -> argparse.ArgumentParser:
    """The options of every command that samples from the text-to-image model."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-o", "--output", type=Path, default=None, help="the captioned figure (PNG)")
    p.add_argument("--save-dir", type=Path, default=None,
                   help="also write each image alone as DIR/NNN.png (all or none of them)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the images an earlier run left in --save-dir (its NNN.png files)")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the pipeline's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (>= 1)")
    p.add_argument(
        "--sampler", choices=SAMPLER_NAMES, default=None,
        help="reverse process: ddim (default), ddpm, dpm++ (DPM-Solver++ 2M), euler, euler_a (ancestral), "
        "lcm (a distilled student's, its default)",
    )
    p.add_argument("--eta", type=float, default=0.0, help="DDIM's noise: 0 deterministic, 1 DDPM-like")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="default: data/checkpoints/text2img; or a local Stable Diffusion folder (diffusers' "
                   "layout) or .safetensors file (SD's defaults: guidance 7.5, 25 steps, its scheduler)")
    p.add_argument("--tokenizer", type=Path, default=None,
                   help="with a single-file SD --checkpoint: a folder with CLIP's tokenizer (an SD folder)")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="float16: the SD U-Net in half precision, on a GPU (--device cuda or mps) only")
    p.add_argument("--fp16", dest="dtype", action="store_const", const="float16", help="--dtype float16")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--no-strict", action="store_true",
                   help="let prompts outside the caption grammar through (for experiments)")
    return p


def _add_train(commands, common: argparse.ArgumentParser) -> None:
    p = commands.add_parser("train", help="train a model and write its checkpoint", parents=[common])
    p.add_argument("what", choices=[*TRAIN_KINDS, *TRAIN_ALIASES],
                   help="toy2d: lesson 02's MLP; pixel_ddpm (pixel): lesson 03's U-Net; vae: lesson 04; "
                   "latent_ddpm (latent): lesson 05's DDPM; clip, text2img: lesson 06's text encoder and "
                   "text-conditioned U-Net; lcm: lesson 11's few-step student distilled from text2img")
    p.add_argument("--budget", choices=BUDGETS, default=None,
                   help="training preset (default: $MINILDM_BUDGET, else full with CUDA, quick without)")
    p.add_argument("--steps", type=int, default=None, help="override the preset's number of steps")
    p.add_argument("--batch-size", type=int, default=None,
                   help="override the preset's batch size (refused when it cannot fit in memory)")
    p.add_argument("--lr", type=float, default=None,
                   help="override the preset's peak learning rate (a positive float, e.g. 1e-4); "
                   "--resume may change it, e.g. lower it after the run diverged")
    p.add_argument("--data-size", type=int, default=None, help="number of training images")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="where the resumable training state goes (default runs/<kind>)")
    p.add_argument("--out", type=Path, default=None,
                   help="where the model checkpoint goes (default outputs/checkpoints/<kind>; one "
                   "already there is replaced only with --overwrite or --resume)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh even though --run-dir holds a training state or --out a model "
                   "checkpoint (they are replaced)")
    p.add_argument("--text-encoder", type=Path, default=None,
                   help="text2img, lcm: the text encoder to condition on (default "
                   "data/checkpoints/clip; or a transformers CLIP folder with its tokenizer)")
    p.add_argument("--backbone", choices=BACKBONES, default=None,
                   help="text2img only: the U-Net (default) or lesson 11's DiT transformer")
    p.add_argument("--vae", type=Path, default=None,
                   help="latent_ddpm, text2img, lcm: the VAE whose latents to learn "
                   "(default data/checkpoints/vae)")
    p.add_argument("--teacher", type=Path, default=None,
                   help="lcm only: the text2img checkpoint to distil (default data/checkpoints/text2img)")
    p.add_argument("--original-steps", type=int, default=None,
                   help="lcm only: the skipping-step schedule's N (teacher steps of k = T / N; default 50)")
    p.add_argument("--consistency-loss", choices=CONSISTENCY_LOSSES, default=None,
                   help="lcm only: the distance between student and target (default l2; huber: pseudo-Huber)")
    p.add_argument("--two-object-fraction", type=float, default=None,
                   help="text2img only: the share of two-object training scenes (default 0.5; lesson 10)")
    p.add_argument("--clip-skip", type=int, default=None,
                   help="text2img only: condition on the text encoder's layer L - N instead of its last "
                   "(N = L: the word embeddings alone; default 0; lesson 10)")
    p.add_argument("--preset", choices=PRESETS, default=None,
                   help="the full budget's settings: cpu (the shipped checkpoints') or gpu (larger batches, "
                   "fewer steps); default gpu on CUDA, else cpu ($MINILDM_PRESET)")
    p.add_argument("--compile", action="store_true", help="run the model through torch.compile")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minildm", description="a tiny Stable Diffusion, lesson by lesson")
    common, sampling = _common(), _sampling()
    commands = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help: str, *parents: argparse.ArgumentParser) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, parents=list(parents))

    p = add("demo", "write a picture of what minildm can do", common)
    p.add_argument("-o", "--output", type=Path, default=Path("outputs/demo.png"))
    p = add("generate", "turn prompts into images (lesson 06)", common, sampling)
    p.add_argument("prompts", nargs="+", help='shapes-world prompts, e.g. "a small blue square" (with a '
                   "Stable Diffusion checkpoint: any text, cut at CLIP's 77 tokens with a warning)")
    p.add_argument("-n", "--num-images", type=int, default=1, help="images per prompt")
    p.add_argument("--height", type=int, default=None,
                   help="Stable Diffusion only: pixels, a multiple of 8 x the U-Net's downsampling (SD: 64; "
                   "default its config's, 512 for SD 1.5)")
    p.add_argument("--width", type=int, default=None, help="Stable Diffusion only: as --height")
    p.add_argument("--phrase-guidance", type=float, default=0.0,
                   help="composable guidance: one guided term per object of a two-object prompt (lesson 10; "
                   "0 = off, e.g. 1; twice the work for two objects)")
    p = add("img2img", "edit an image toward prompts (lesson 08)", common, sampling)
    p.add_argument("image", type=Path, help="an RGB PNG of the model's size (32 x 32; Stable Diffusion: "
                   "square, e.g. 512 x 512)")
    p.add_argument("prompts", nargs="+", help="what the edited image should show")
    p.add_argument("--strength", type=float, default=DEFAULT_STRENGTH,
                   help=f"how far to noise the image, in (0, 1] (default {DEFAULT_STRENGTH})")
    p.add_argument("--init", choices=IMG2IMG_INITS, default=None,
                   help="the start at that level: 'inversion' (DDIM run backwards from the image; default "
                   "with the DDIM sampler) or 'noise' (SDEdit's random noise; default with other samplers)")
    p = add("inpaint", "repaint the white part of MASK (lesson 08)", common, sampling)
    p.add_argument("image", type=Path, help="an RGB PNG of the model's size (32 x 32; Stable Diffusion: "
                   "square, e.g. 512 x 512)")
    p.add_argument("mask", type=Path, help="a black-and-white PNG of the same size: white = repaint")
    p.add_argument("prompts", nargs="+", help="the whole picture wanted")
    p.add_argument("--resample", type=int, default=None,
                   help="RePaint: take each step N times, noising back in between (N x the time; "
                        f"default {DEFAULT_RESAMPLE} with DDIM and DDPM, 1 with other samplers)")
    p = add("evaluate", "measure the text-to-image model: fidelity, CLIP score, Frechet distance", common)
    p.add_argument("--n", type=int, default=64, help="prompts per kind (default 64)")
    p.add_argument("--phrase-guidance", type=float, default=0.0,
                   help="composable guidance: one guided term per object of a two-object prompt (lesson 10; "
                   "0 = off, e.g. 1; twice the work for two objects)")
    p.add_argument("--checkpoint", type=Path, default=None, help="default: data/checkpoints/text2img")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p = add("tokenizer", "build the tokenizer from the caption grammar (deterministic: no --seed)", _debug())
    p.add_argument("-o", "--output", type=Path, default=None, help="default data/tokenizer")
    _add_train(commands, common)
    for name, (_, help) in PROGRAMS.items():  # (listed here; main() hands them their arguments)
        p = commands.add_parser(name, help=help, add_help=False)
        p.add_argument("arguments", nargs=argparse.REMAINDER, help=f"see minildm {name} --help")
    return parser


def run(args: argparse.Namespace) -> None:
    from minildm import commands

    if args.command == "demo":
        from minildm.demo import demo
        from minildm.utils import figure_path
        from minildm.validation import check_seed

        check_seed("--seed", args.seed)
        figure_path(args.output)  # a folder is refused before any work
        print(f"demo picture written to {demo(args.output, seed=args.seed).resolve()}")
    elif args.command == "train":
        commands.train_command(args)
    elif args.command == "tokenizer":
        commands.tokenizer_command(args.output)
    elif args.command == "evaluate":
        print(commands.evaluate_command(args))
    else:  # generate, img2img, inpaint
        run_command = commands.generate_command if args.command == "generate" else commands.edit_command
        with one_line_warnings():  # (e.g. a prompt cut at CLIP's 77 tokens)
            path, replaced = run_command(args)
        count = len(args.prompts) * getattr(args, "num_images", 1)
        saved = f"; each image alone in {args.save_dir.resolve()}" if args.save_dir is not None else ""
        saved += f" (its {replaced} earlier image(s) removed or replaced)" if replaced else ""
        print(f"{count} image(s) written to {path.resolve()}{saved}")


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Inside, a warning prints as one line, ``minildm: warning: ...``, on stderr (as errors do)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"minildm: warning: {' '.join(str(message).split())}", file=sys.stderr)

    with warnings.catch_warnings():  # (restores the usual display on the way out)
        warnings.showwarning = show
        yield


def run_program(name: str, argv: list[str]) -> int:
    """``minildm retrain ...`` / ``minildm classroom ...``: the program's own ``main`` with the rest of
    the command line."""
    import importlib

    module = importlib.import_module(PROGRAMS[name][0])
    return module.main(argv, prog=f"minildm {name}")


def main(argv: list[str] | None = None) -> int:
    """Run one ``minildm`` command; return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = os.environ.get("MINILDM_DEBUG", "") not in ("", "0")
    if argv and argv[0] in PROGRAMS:  # (their own usage errors exit 2, as ours do)
        return _one_line_errors(f"minildm {argv[0]}", debug, lambda: run_program(argv[0], argv[1:]))
    args = build_parser().parse_args(argv)
    return _one_line_errors("minildm", debug or args.debug, lambda: run(args) or 0)


def _one_line_errors(prog: str, debug: bool, work: Callable[[], int]) -> int:
    """``work()``'s exit status; an error or an interruption as one line on stderr (``PROG: error: ...``,
    exit 1; ``PROG: interrupted``, exit 130), or raised with its traceback when ``debug``."""
    try:
        return work()
    except KeyboardInterrupt as err:
        if debug:
            raise
        how = f"; {err}" if str(err) else ""  # e.g. train's: how to continue the run
        print(f"{prog}: interrupted{how}", file=sys.stderr)
        return 130
    except Exception as err:  # one line for the user; the traceback with --debug
        if debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1
