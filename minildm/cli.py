"""The ``minildm`` command (also ``python -m minildm``): parse the arguments, check them, dispatch.

minildm demo [-o outputs/demo.png]     the shapes world, the forward process, samples of lessons 03-07
minildm train {toy2d,pixel_ddpm,vae,latent_ddpm,clip,text2img} [--budget quick|full] [--resume] ...
minildm generate "a large red circle in the top left" [more prompts] [-o outputs/generated.png]
                 [--sampler ddpm|ddim] [--steps N] [--eta 0] [--guidance S] [--seed N]
minildm tokenizer [-o data/tokenizer]  build the word-level tokenizer from the caption grammar

Errors are one line (``minildm: error: ...``; exit 2 for bad usage, 1 otherwise); ``--debug``
or ``MINILDM_DEBUG=1`` shows the Python traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# the names ``train`` knows (minildm.tasks.TASKS and ALIASES), repeated here so that ``--help``
# does not have to import torch; tests/test_cli.py checks that the two agree
TRAIN_KINDS = ("toy2d", "pixel_ddpm", "vae", "latent_ddpm", "clip", "text2img")
TRAIN_ALIASES = {"pixel": "pixel_ddpm", "latent": "latent_ddpm"}
SAMPLER_NAMES = ("ddpm", "ddim")  # minildm.schedulers.SCHEDULERS


def _add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="non-negative int (default 0)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minildm", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    add = lambda name, help: commands.add_parser(name, help=help, parents=[common])  # noqa: E731
    p_demo = add("demo", "write a picture of what minildm can do")
    p_demo.add_argument("-o", "--output", type=Path, default=Path("outputs/demo.png"))
    _add_seed(p_demo)
    p_gen = add("generate", "turn prompts into images (lesson 06's model)")
    p_gen.add_argument("prompts", nargs="+", help='shapes-world prompts, e.g. "a small blue square"')
    p_gen.add_argument("-o", "--output", type=Path, default=Path("outputs/generated.png"))
    p_gen.add_argument("-n", "--num-images", type=int, default=1, help="images per prompt")
    p_gen.add_argument("--steps", type=int, default=None, help="sampling steps (default: the pipeline's)")
    p_gen.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (>= 1)")
    p_gen.add_argument("--sampler", choices=SAMPLER_NAMES, default=None,
                       help="reverse process (default: the pipeline's, ddim)")
    p_gen.add_argument("--eta", type=float, default=0.0, help="DDIM's noise: 0 deterministic, 1 DDPM-like")
    _add_seed(p_gen)
    p_gen.add_argument("--checkpoint", type=Path, default=None, help="default data/checkpoints/text2img")
    p_gen.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p_gen.add_argument("--no-strict", action="store_true",
                       help="let prompts outside the caption grammar through (for experiments)")
    p_tok = add("tokenizer", "build the tokenizer from the caption grammar and save it")
    p_tok.add_argument("-o", "--output", type=Path, default=None, help="default data/tokenizer")
    p_train = add("train", "train a model and write its checkpoint")
    p_train.add_argument(
        "what",
        choices=[*TRAIN_KINDS, *TRAIN_ALIASES],
        help="toy2d: lesson 02's MLP; pixel_ddpm (pixel): lesson 03's U-Net; vae: lesson 04; "
        "latent_ddpm (latent): lesson 05's DDPM; clip, text2img: lesson 06's text encoder and "
        "text-conditioned U-Net",
    )
    p_train.add_argument(
        "--budget",
        choices=["quick", "full"],
        default=None,
        help="training preset (default: $MINILDM_BUDGET, else full with CUDA, quick without)",
    )
    p_train.add_argument("--steps", type=int, default=None, help="override the preset's number of steps")
    p_train.add_argument("--batch-size", type=int, default=None)
    _add_seed(p_train)
    p_train.add_argument("--data-size", type=int, default=None, help="number of training images")
    p_train.add_argument("--run-dir", type=Path, default=None,
                         help="where the resumable training state goes (default runs/<kind>)")
    p_train.add_argument("--out", type=Path, default=None,
                         help="where the model checkpoint goes (default outputs/checkpoints/<kind>)")
    p_train.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p_train.add_argument("--overwrite", action="store_true",
                         help="start afresh even though --run-dir holds a training state (it is replaced)")
    p_train.add_argument("--text-encoder", type=Path, default=None,
                         help="text2img only: the text encoder to condition on (default "
                         "data/checkpoints/clip; or a transformers CLIP folder with its tokenizer)")
    p_train.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    return parser


def _check_run_folders(run_dir: Path, out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before any work, folders a training run could not use or would silently replace."""
    from minildm.checkpoints import STATE_NAME
    from minildm.utils import check_writable_folder

    for flag, folder in (("--run-dir", run_dir), ("--out", out)):
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"{flag} {str(folder)!r} is a file; it must be a folder (made if missing)")
        check_writable_folder(folder, flag)
    state = run_dir / STATE_NAME
    if resume and overwrite:
        raise ValueError("--resume continues the run in --run-dir, --overwrite replaces it: give one of them")
    if resume and not state.is_file():
        raise ValueError(f"--resume: no training state in {str(run_dir)!r} ({STATE_NAME}); nothing to resume")
    if not resume and not overwrite and state.exists():
        raise ValueError(
            f"--run-dir {str(run_dir)!r} already holds a training state: continue it with --resume, "
            "replace it with --overwrite, or pick another --run-dir"
        )


def train_command(args: argparse.Namespace) -> None:
    """``minildm train``: build the task, train it, write its checkpoint."""
    from dataclasses import asdict, replace

    from minildm.checkpoints import save_model
    from minildm.tasks import TASKS
    from minildm.training import train
    from minildm.utils import get_budget, seed_everything

    kind = TRAIN_ALIASES.get(args.what, args.what)
    budget = get_budget(args.budget)
    run_dir = args.run_dir or Path("runs") / kind
    out = args.out or Path("outputs") / "checkpoints" / kind
    _check_run_folders(run_dir, out, args.resume, args.overwrite)
    seed_everything(args.seed)
    extra = {"data_size": args.data_size} if args.data_size is not None else {}
    if extra and kind == "toy2d":
        raise ValueError("--data-size applies to the image tasks (pixel_ddpm, vae, ...), not 'toy2d'")
    if args.text_encoder is not None:
        if kind != "text2img":
            raise ValueError(f"--text-encoder applies to 'text2img' only, not {kind!r}")
        extra["text_encoder_path"] = args.text_encoder
    task = TASKS[kind](budget, seed=args.seed, **extra)
    cfg = task.train_config
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps)
    if args.batch_size is not None:
        cfg = replace(cfg, batch_size=args.batch_size)
    print(f"training {kind} ({budget} budget: {cfg.steps} steps of {cfg.batch_size}) -> {out}")
    _, ema, result = train(task.model, task.loss, cfg, task.config, run_dir=run_dir, out_dir=out,
                           resume=args.resume, device=args.device, overwrite=args.overwrite)
    if task.finalize is not None:
        task.model.load_state_dict(ema.state_dict())
        added = task.finalize(task.model)
        config = dict(task.config, training=asdict(cfg), steps_trained=cfg.steps, **added)
        save_model(out, ema.state_dict(), config)
        print("added to the checkpoint's config:", added)
    tail = result.losses[-50:]
    if not tail:
        print(f"nothing left to train (the run in --run-dir is finished); checkpoint in {out.resolve()}")
        return
    print(
        f"done: {result.steps_done} steps in {result.seconds:.0f} s ({result.items_per_second:.0f} "
        f"examples/s), final loss {sum(tail) / max(1, len(tail)):.4f}; checkpoint in {out.resolve()}"
    )


def generate(
    prompts: list[str],
    output: Path,
    num_images: int = 1,
    steps: int | None = None,
    guidance: float | None = None,
    seed: int = 0,
    checkpoint: Path | None = None,
    device: str | None = None,
    sampler: str | None = None,
    eta: float = 0.0,
    strict: bool = True,
) -> Path:
    """Sample ``num_images`` images per prompt with the shipped text-to-image pipeline and save
    them as one picture, each image under its prompt. Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minildm.pipelines import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, TextToImagePipeline
    from minildm.sampling import check_guidance_scale
    from minildm.schedulers import SCHEDULERS
    from minildm.schedulers.ddim import check_eta
    from minildm.utils import check_positive_int, check_seed, figure_path, show_images, to_uint8

    # every argument is checked before the models load (the prompts: before sampling starts)
    check_positive_int("--num-images", num_images)
    if steps is not None:
        check_positive_int("--steps", steps)
    check_seed(seed, "--seed")
    if guidance is not None:
        check_guidance_scale(guidance)
    check_eta(eta)
    if eta and sampler == "ddpm":
        raise ValueError("--eta is DDIM's noise level; with --sampler ddpm leave it 0")
    output = figure_path(output)  # refused before any work if it is a folder
    pipe = TextToImagePipeline.from_pretrained(checkpoint, device=device)
    pipe.strict = strict
    steps = DEFAULT_STEPS if steps is None else steps
    guidance = DEFAULT_GUIDANCE if guidance is None else guidance
    sampler = DEFAULT_SAMPLER if sampler is None else sampler
    pipe.scheduler = SCHEDULERS[sampler].from_config(pipe.scheduler.config)
    batch = [p for p in prompts for _ in range(num_images)]
    images = to_uint8(pipe(batch, steps, guidance, seed=seed, progress=False, eta=eta))
    how = f"DDIM (eta {eta:g})" if sampler == "ddim" else "DDPM"
    titles = [p or "(empty prompt)" for p in batch]
    fig = show_images(images, titles, ncols=8, path=output,
                      suptitle=f"{how}, {steps} steps, guidance {guidance:g}, seed {seed}")
    plt.close(fig)
    return output


def tokenizer_command(output: Path | None) -> None:
    from minildm.text import build_tokenizer, save_tokenizer, tokenizer_dir

    tokenizer = build_tokenizer()
    path = save_tokenizer(tokenizer, output or tokenizer_dir())
    print(f"tokenizer ({len(tokenizer)} tokens, context length {tokenizer.model_max_length}) "
          f"written to {path.resolve()}")


def run(args: argparse.Namespace) -> None:
    if args.command == "demo":
        from minildm.demo import demo
        from minildm.utils import check_seed, figure_path

        check_seed(args.seed, "--seed")
        figure_path(args.output)  # a folder is refused before any work
        path = demo(args.output, seed=args.seed)
        print(f"demo picture written to {path.resolve()}")
    elif args.command == "train":
        train_command(args)
    elif args.command == "tokenizer":
        tokenizer_command(args.output)
    elif args.command == "generate":
        path = generate(args.prompts, args.output, args.num_images, args.steps, args.guidance, args.seed,
                        args.checkpoint, args.device, args.sampler, args.eta, strict=not args.no_strict)
        print(f"{len(args.prompts) * args.num_images} image(s) written to {path.resolve()}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("MINILDM_DEBUG", "") not in ("", "0")
    try:
        run(args)
    except KeyboardInterrupt:
        if debug:
            raise
        print("minildm: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line for the user; the traceback with --debug
        if debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"minildm: error: {message}", file=sys.stderr)
        return 1
    return 0
