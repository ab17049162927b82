"""The ``minildm`` command (also ``python -m minildm``).

minildm demo [-o outputs/demo.png]     the shapes world, the forward process, samples of lessons 03 and 05
minildm train {toy2d,pixel,vae,latent,clip,text2img} [--budget quick|full] [--steps N] [--resume] ...
minildm generate "a large red circle in the top left" [more prompts] [-o outputs/generated.png]
                 [--sampler ddpm|ddim] [--steps N] [--eta 0] [--guidance S] [--seed N]
minildm tokenizer [-o data/tokenizer]  build the word-level tokenizer from the caption grammar
"""

from __future__ import annotations

import argparse
from pathlib import Path

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


def demo(output: Path, seed: int = 0) -> Path:
    """Draw a grid of shapes-world images with their captions, one image noised by the forward
    process q(x_t | x_0) at a few timesteps, images sampled from the shipped pixel-space DDPM of
    lesson 03 and the latent diffusion model of lesson 05, and the text-to-image model of lesson
    06 turning ``DEMO_PROMPTS`` into pictures, each judged against its prompt (lesson 07's DDIM,
    the pipeline's default; the CPU takes seconds). Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from minildm.data import ShapesDataset
    from minildm.diffusion import add_noise
    from minildm.metrics import judge, score
    from minildm.pipeline import LatentDiffusionPipeline
    from minildm.samplers import Sampler
    from minildm.schedules import NoiseSchedule
    from minildm.tasks import load_pretrained
    from minildm.text2img import TextToImagePipeline
    from minildm.utils import seed_everything, to_uint8

    generator = seed_everything(seed)
    data = ShapesDataset(12, seed=seed, two_object_fraction=0.34)
    verdict = score(data.images, data.captions)
    schedule = NoiseSchedule("linear")
    x0 = data[0][0].expand(len(DEMO_TIMESTEPS), -1, -1, -1)
    noise = torch.randn(x0.shape, generator=generator)
    noisy = to_uint8(add_noise(x0, noise, torch.tensor(DEMO_TIMESTEPS), schedule.alphas_cumprod))
    model, scheduler, _ = load_pretrained("pixel_ddpm")
    samples = Sampler().sample(model, (8, 3, 32, 32), scheduler, 50, generator=generator, progress=False)
    samples = to_uint8(samples)
    latent_pipe = LatentDiffusionPipeline.from_pretrained(device="cpu")
    latent_samples = to_uint8(latent_pipe(8, 50, seed=seed, progress=False))
    text_pipe = TextToImagePipeline.from_pretrained(device="cpu")
    prompted = to_uint8(text_pipe(list(DEMO_PROMPTS), seed=seed, progress=False))
    followed = [judge(image, prompt).ok for image, prompt in zip(prompted, DEMO_PROMPTS)]

    fig = plt.figure(figsize=(11, 11))
    grid = fig.add_gridspec(6, 8, hspace=0.55)
    for k in range(12):
        ax = fig.add_subplot(grid[k // 6, k % 6 + 1])
        ax.imshow(data.images[k], interpolation="nearest")
        ax.set_title(_wrap(data.captions[k]), fontsize=7)
        ax.axis("off")
    for k, t in enumerate(DEMO_TIMESTEPS):
        ax = fig.add_subplot(grid[2, k])
        ax.imshow(noisy[k], interpolation="nearest")
        ax.set_title(f"t = {t}", fontsize=8)
        ax.axis("off")
    for k in range(8):
        ax = fig.add_subplot(grid[3, k])
        ax.imshow(samples[k], interpolation="nearest")
        ax.set_title("sampled" if k else "lesson 03, pixels:", fontsize=8)
        ax.axis("off")
    for k in range(8):
        ax = fig.add_subplot(grid[4, k])
        ax.imshow(latent_samples[k], interpolation="nearest")
        ax.set_title("sampled" if k else "lesson 05, latents:", fontsize=8)
        ax.axis("off")
    for k, prompt in enumerate(DEMO_PROMPTS):
        ax = fig.add_subplot(grid[5, k])
        ax.imshow(prompted[k], interpolation="nearest")
        ax.set_title(("✓ " if followed[k] else "✗ ") + _wrap(prompt, 18), fontsize=6.5)
        ax.axis("off")
    fig.suptitle(
        f"The shapes world (judge: {verdict['score']:.0%} of captions satisfied), the forward "
        f"process q(x_t | x_0) (linear schedule, T = {len(schedule)}),\nand new images sampled "
        "from noise by the pixel-space DDPM of lesson 03 and the latent diffusion model of lesson 05;\n"
        f"bottom row: lesson 06 turns prompts into pictures ({sum(followed)} of {len(followed)} "
        "judged to follow their prompt)",
        fontsize=10,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return output


def _wrap(text: str, width: int = 20) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minildm", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p_demo = commands.add_parser("demo", help="write a picture of what minildm can do")
    p_demo.add_argument("-o", "--output", type=Path, default=Path("outputs/demo.png"))
    p_demo.add_argument("--seed", type=int, default=0)
    p_gen = commands.add_parser("generate", help="turn prompts into images (lesson 06's model)")
    p_gen.add_argument("prompts", nargs="+", help='shapes-world prompts, e.g. "a small blue square"')
    p_gen.add_argument("-o", "--output", type=Path, default=Path("outputs/generated.png"))
    p_gen.add_argument("-n", "--num-images", type=int, default=1, help="images per prompt")
    p_gen.add_argument("--steps", type=int, default=None, help="sampling steps (default: the pipeline's)")
    p_gen.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (>= 1)")
    p_gen.add_argument("--sampler", choices=("ddpm", "ddim"), default=None,
                       help="reverse process (default: the pipeline's)")
    p_gen.add_argument("--eta", type=float, default=0.0, help="DDIM's noise: 0 deterministic, 1 DDPM-like")
    p_gen.add_argument("--seed", type=int, default=0)
    p_gen.add_argument("--checkpoint", type=Path, default=None, help="default data/checkpoints/text2img")
    p_gen.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p_tok = commands.add_parser("tokenizer", help="build the tokenizer from the caption grammar and save it")
    p_tok.add_argument("-o", "--output", type=Path, default=None, help="default data/tokenizer")
    p_train = commands.add_parser("train", help="train a model and write its checkpoint")
    p_train.add_argument(
        "what",
        choices=["toy2d", "pixel", "vae", "latent", "clip", "text2img"],
        help="toy2d: lesson 02's MLP; pixel: lesson 03's U-Net; vae: lesson 04; latent: lesson 05's DDPM; "
        "clip, text2img: lesson 06's text encoder and text-conditioned U-Net",
    )
    p_train.add_argument(
        "--budget",
        choices=["quick", "full"],
        default=None,
        help="training preset (default: $MINILDM_BUDGET, else full with CUDA, quick without)",
    )
    p_train.add_argument("--steps", type=int, default=None, help="override the preset's number of steps")
    p_train.add_argument("--batch-size", type=int, default=None)
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--data-size", type=int, default=None, help="number of training images")
    p_train.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="where the resumable training state goes (default runs/<what>)",
    )
    p_train.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the model checkpoint goes (default outputs/checkpoints/<kind>)",
    )
    p_train.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p_train.add_argument(
        "--text-encoder",
        type=Path,
        default=None,
        help="text2img only: the text encoder to condition on (default data/checkpoints/clip; "
        "or a transformers CLIP folder with its tokenizer)",
    )
    p_train.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    return parser


def train_command(args: argparse.Namespace) -> None:
    from dataclasses import asdict, replace

    from minildm.tasks import TASKS
    from minildm.training import train
    from minildm.utils import get_budget, seed_everything

    budget = get_budget(args.budget)
    seed_everything(args.seed)
    extra = {"data_size": args.data_size} if args.data_size is not None else {}
    if extra and args.what == "toy2d":
        raise ValueError("--data-size applies to the image tasks (pixel, vae, latent, ...), not 'toy2d'")
    if args.text_encoder is not None:
        if args.what != "text2img":
            raise ValueError(f"--text-encoder applies to 'text2img' only, not {args.what!r}")
        extra["text_encoder_path"] = args.text_encoder
    task = TASKS[args.what](budget, seed=args.seed, **extra)
    cfg = task.train_config
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps)
    if args.batch_size is not None:
        cfg = replace(cfg, batch_size=args.batch_size)
    run_dir = args.run_dir or Path("runs") / args.what
    out = args.out or Path("outputs") / "checkpoints" / task.kind
    print(f"training {task.kind} ({budget} budget: {cfg.steps} steps of {cfg.batch_size}) -> {out}")
    _, ema, result = train(
        task.model,
        task.loss,
        cfg,
        task.config,
        run_dir=run_dir,
        out_dir=out,
        resume=args.resume,
        device=args.device,
    )
    if task.finalize is not None:
        from minildm.checkpoints import save_model

        model = task.model
        model.load_state_dict(ema.state_dict())
        extra = task.finalize(model)
        save_model(
            out, ema.state_dict(), dict(task.config, training=asdict(cfg), steps_trained=cfg.steps, **extra)
        )
        print("added to the checkpoint's config:", extra)
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
) -> Path:
    """Sample ``num_images`` images per prompt with the shipped text-to-image pipeline and save
    them as one picture, each image under its prompt. Returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minildm.text2img import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, TextToImagePipeline
    from minildm.utils import to_uint8

    if not isinstance(num_images, int) or num_images < 1:
        raise ValueError(f"--num-images must be a positive int, got {num_images!r}")
    pipe = TextToImagePipeline.from_pretrained(checkpoint, device=device)
    steps = DEFAULT_STEPS if steps is None else steps
    guidance = DEFAULT_GUIDANCE if guidance is None else guidance
    sampler = DEFAULT_SAMPLER if sampler is None else sampler
    batch = [p for p in prompts for _ in range(num_images)]
    images = to_uint8(pipe(batch, steps, guidance, seed=seed, progress=False, sampler=sampler, eta=eta))
    cols = min(len(batch), 8)
    rows = -(-len(batch) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, prompt in zip(axes.flat, images, batch):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(_wrap(prompt or "(empty prompt)", 18), fontsize=7)
    how = f"DDIM (eta {eta:g})" if sampler == "ddim" else "DDPM"
    fig.suptitle(f"{how}, {steps} steps, guidance {guidance:g}, seed {seed}", fontsize=8)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return output


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        path = demo(args.output, seed=args.seed)
        print(f"demo picture written to {path.resolve()}")
    elif args.command == "train":
        train_command(args)
    elif args.command == "tokenizer":
        from minildm.text import build_tokenizer, save_tokenizer, tokenizer_dir

        tokenizer = build_tokenizer()
        path = save_tokenizer(tokenizer, args.output or tokenizer_dir())
        print(f"tokenizer ({len(tokenizer)} tokens, context length {tokenizer.model_max_length}) "
              f"written to {path.resolve()}")
    elif args.command == "generate":
        path = generate(args.prompts, args.output, args.num_images, args.steps, args.guidance, args.seed,
                        args.checkpoint, args.device, args.sampler, args.eta)
        print(f"{len(args.prompts) * args.num_images} image(s) written to {path.resolve()}")
    return 0
