"""What each ``minildm`` command does, once :mod:`minildm.cli` has parsed its arguments.

Every command checks its arguments and paths first, then loads models, then works: a mistake is
reported before any long computation starts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from minildm.names import DEFAULT_SAMPLER, INVERSION_SAMPLER, ONE_STEP_SAMPLERS, SAMPLER_TITLES


def _check_run_folders(run_dir: Path, out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before any work, folders a training run could not use or would silently replace: a
    training state in ``run_dir`` or a model checkpoint in ``out`` is replaced only with ``overwrite``
    (``resume`` continues the run, which writes its own checkpoint)."""
    from minildm.checkpoints import CONFIG_NAME, STATE_NAME, WEIGHTS_NAME
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
    held = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if (out / name).exists()]
    if held and not resume and not overwrite:
        raise ValueError(
            f"--out {str(out)!r} already holds a model checkpoint ({', '.join(held)}): replace it with "
            "--overwrite, or pick another --out"
        )


def _interrupted(run_dir: Path, resumed: bool, started: float, every: int) -> KeyboardInterrupt:
    """The interruption, saying how to go on: ``--resume`` once this run (or the one it resumes)
    has saved a training state, else the same command again."""
    from minildm.checkpoints import STATE_NAME

    state = run_dir / STATE_NAME
    if resumed or (state.exists() and state.stat().st_mtime >= started):
        return KeyboardInterrupt(
            f"the same command with --resume continues the run in {str(run_dir)!r} from its last checkpoint"
        )
    again = " with --overwrite" if state.exists() else ""
    return KeyboardInterrupt(
        f"nothing saved yet (a checkpoint every {every} steps): run the same command again{again}"
    )


def _train_extras(kind: str, args: argparse.Namespace) -> dict:
    """The task arguments only some kinds take, refused (naming the option) for the others."""
    extra = {"data_size": args.data_size} if args.data_size is not None else {}
    if extra and kind == "toy2d":
        raise ValueError("--data-size applies to the image tasks (pixel_ddpm, vae, ...), not 'toy2d'")
    for flag, attribute, name, kinds in (
        ("--text-encoder", "text_encoder", "text_encoder_path", ("text2img", "lcm")),
        ("--backbone", "backbone", "backbone", ("text2img",)),
        ("--vae", "vae", "vae_path", ("latent_ddpm", "text2img", "lcm")),
        ("--teacher", "teacher", "teacher", ("lcm",)),
        ("--two-object-fraction", "two_object_fraction", "two_object_fraction", ("text2img",)),
        ("--clip-skip", "clip_skip", "clip_skip", ("text2img",)),
        ("--original-steps", "original_steps", "original_steps", ("lcm",)),
        ("--consistency-loss", "consistency_loss", "consistency_loss", ("lcm",)),
    ):
        value = getattr(args, attribute, None)
        if value is None:
            continue
        if kind not in kinds:
            raise ValueError(f"{flag} applies to {' and '.join(repr(k) for k in kinds)} only, not {kind!r}")
        extra[name] = value
    return extra


def _with_overrides(cfg, args: argparse.Namespace):
    """The preset's training config with ``--steps``, ``--batch-size`` and ``--lr`` where given."""
    from dataclasses import replace

    from minildm.utils import check_positive_number

    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps)
    if args.batch_size is not None:
        cfg = replace(cfg, batch_size=args.batch_size)
    if args.lr is not None:
        cfg = replace(cfg, lr=check_positive_number("--lr", args.lr))
    return cfg


def _train_saying_how_to_go_on(task, cfg, args: argparse.Namespace, run_dir: Path, out: Path, device):
    """``train()`` the task; an interruption or a divergence says how to go on (``--resume``, ``--lr``).
    Returns the EMA model and the :class:`~minildm.training.TrainResult`."""
    from minildm.training import TrainingDivergedError, train

    started = time.time()
    try:
        _, ema, result = train(task.model, task.loss, cfg, task.config, run_dir=run_dir, out_dir=out,
                               resume=args.resume, device=device, overwrite=args.overwrite,
                               compile=args.compile)
    except KeyboardInterrupt:
        raise _interrupted(run_dir, args.resume, started, cfg.checkpoint_every) from None
    except TrainingDivergedError as err:
        raise TrainingDivergedError(
            f"{err}; lower it with --lr (this run: {cfg.lr:g}) and continue with --resume, "
            "or start again with --overwrite"
        ) from err
    return ema, result


def train_command(args: argparse.Namespace) -> None:
    """``minildm train``: check everything, build the task, train it, write its checkpoint.
    Under ``torchrun`` every rank runs this; rank 0 prints and writes."""
    from dataclasses import asdict

    from minildm.checkpoints import STATE_NAME, read_training_config, save_model
    from minildm.distributed import check_divides, init_distributed, shutdown_distributed
    from minildm.resources import check_fits, training_bytes
    from minildm.tasks import ALIASES, TASKS, TRAIN_BUDGETS
    from minildm.tasks.common import get_preset, train_config
    from minildm.training import check_same_setup
    from minildm.utils import get_budget, get_device, seed_everything
    from minildm.validation import check_seed

    kind = ALIASES.get(args.what, args.what)
    budget = get_budget(args.budget)
    run_dir = args.run_dir or Path("runs") / kind
    out = args.out or Path("outputs") / "checkpoints" / kind
    _check_run_folders(run_dir, out, args.resume, args.overwrite)
    check_seed("--seed", args.seed)
    extra = _train_extras(kind, args)
    device = get_device(args.device)
    preset = get_preset(args.preset, device)
    cfg = _with_overrides(train_config(TRAIN_BUDGETS[kind], budget, args.seed, preset), args)
    world, device = init_distributed(device)
    try:
        if world.distributed:
            if kind == "clip":
                raise ValueError("'clip' trains in one process (its contrastive loss needs the whole batch): "
                                 "run it without torchrun")
            check_divides(cfg.batch_size, world.size)
        check_fits(f"training {kind} with a batch of {cfg.batch_size}", training_bytes(
            kind, cfg.batch_size // world.size, args.data_size), device,
            "lower --batch-size" + (" or --data-size" if args.data_size else ""))
        if args.resume:
            check_same_setup(read_training_config(run_dir / STATE_NAME), preset, world.size, str(run_dir))
        seed_everything(args.seed)
        task = TASKS[kind](budget, seed=args.seed, preset=preset, **extra)
        say = print if world.is_main else (lambda *a, **k: None)
        procs = f", {world.size} processes" if world.distributed else ""
        say(f"training {kind} ({budget} budget, {preset} preset{procs}: {cfg.steps} steps of "
            f"{cfg.batch_size}) on {device} -> {out}")
        ema, result = _train_saying_how_to_go_on(task, cfg, args, run_dir, out, device)
        if task.finalize is not None and world.is_main:
            task.model.load_state_dict(ema.state_dict())
            added = task.finalize(task.model)
            config = dict(task.config, training=asdict(cfg), steps_trained=cfg.steps, **added)
            save_model(out, ema.state_dict(), config)
            say("added to the checkpoint's config:", added)
    finally:
        shutdown_distributed()
    tail = result.losses[-50:]
    if not tail:
        say(f"nothing left to train (the run in --run-dir is finished); checkpoint in {out.resolve()}")
        return
    say(
        f"done: {result.steps_done} steps in {result.seconds:.0f} s ({result.items_per_second:.0f} "
        f"examples/s), final loss {sum(tail) / max(1, len(tail)):.4f}; checkpoint in {out.resolve()}"
    )


def _check_sampling_args(
    args: argparse.Namespace, count: int, inputs: dict[str, Path] | None = None
) -> tuple[Path, bool]:
    """The options every sampling command shares, checked before any model loads (``count``: the
    images it will make; ``inputs``: the files it reads, by flag); returns the figure's path (``.png``
    added when it has no suffix) and whether ``--checkpoint`` is a Stable Diffusion checkpoint."""
    from minildm.outputs import check_outputs
    from minildm.resources import check_fits, sampling_bytes
    from minildm.sampling import check_guidance_scale
    from minildm.schedulers.ddim import check_eta
    from minildm.sd_commands import check_checkpoint_args
    from minildm.utils import check_positive_int, check_writable_folder, figure_path, get_device
    from minildm.validation import check_seed

    stable_diffusion = check_checkpoint_args(args)  # a course checkpoint or Stable Diffusion
    if args.steps is not None:
        check_positive_int("--steps", args.steps)
    check_seed("--seed", args.seed)
    if args.guidance is not None:
        check_guidance_scale(args.guidance)
    check_eta(args.eta)
    if args.eta and (args.sampler or DEFAULT_SAMPLER) != "ddim":
        raise ValueError(f"--eta is DDIM's noise level; with --sampler {args.sampler} leave it 0")
    default = Path("outputs") / f"{'generated' if args.command == 'generate' else args.command}.png"
    output = figure_path(default if args.output is None else args.output)
    if args.save_dir is not None:
        check_writable_folder(args.save_dir, "--save-dir")
    check_outputs(output, args.save_dir, args.overwrite, inputs or {})
    check_fits(f"{count} image(s) at once", sampling_bytes(count), get_device(args.device),
               "ask for fewer (-n, prompts) and run the command several times")
    return output, stable_diffusion


@dataclass(frozen=True)
class Sampling:
    """How a sampling command samples, resolved once from its options and the loaded pipeline: where an
    option is unset, the pipeline's default (a distilled student has its own) or Stable Diffusion's."""

    sampler: str
    steps: int
    guidance: float
    size: tuple[int, int] | None = None  # Stable Diffusion's (height, width); the course's models: None

    def kwargs(self, args: argparse.Namespace) -> dict:
        """The pipeline call's sampling arguments (the pipeline checks them before any work)."""
        size = {} if self.size is None else {"height": self.size[0], "width": self.size[1], "progress": True}
        return dict(num_inference_steps=self.steps, guidance_scale=self.guidance, seed=args.seed,
                    progress=False, eta=args.eta) | size


def _load_pipeline(cls, args: argparse.Namespace, stable_diffusion: bool):
    """The shipped (or ``--checkpoint``) text-to-image model as ``cls``, with the chosen sampler, and
    the :class:`Sampling` it samples with."""
    from minildm.schedulers import SCHEDULERS
    from minildm.sd_commands import SD_GUIDANCE, SD_STEPS, load_sd_pipeline, sampler_name

    if stable_diffusion:
        pipe = load_sd_pipeline(cls, args)
        size = None
        if hasattr(args, "height"):  # generate: the picture's size (default the U-Net config's)
            size = tuple(pipe.image_size if v is None else v for v in (args.height, args.width))
        return pipe, Sampling(sampler_name(pipe.scheduler), SD_STEPS if args.steps is None else args.steps,
                              SD_GUIDANCE if args.guidance is None else args.guidance, size)

    pipe = cls.from_pretrained(args.checkpoint, device=args.device)
    pipe.strict = not args.no_strict
    if args.sampler is not None:
        pipe.scheduler = SCHEDULERS[args.sampler].from_config(pipe.scheduler.config)
    return pipe, Sampling(args.sampler or pipe.default_sampler,
                          pipe.default_steps if args.steps is None else args.steps,
                          pipe.default_guidance if args.guidance is None else args.guidance)


def _how(args: argparse.Namespace, sampling: Sampling, kwargs: dict) -> str:
    """The figure's caption: how the images were sampled."""
    name = SAMPLER_TITLES[sampling.sampler]
    name = f"{name} (eta {args.eta:g})" if sampling.sampler == "ddim" else name
    steps, guidance = kwargs["num_inference_steps"], kwargs["guidance_scale"]
    phrases = f" + phrases {kwargs['phrase_guidance']:g}" if kwargs.get("phrase_guidance") else ""
    size = f", {kwargs['width']} x {kwargs['height']}" if "height" in kwargs else ""
    half = ", float16" if args.dtype == "float16" else ""
    return f"{name}, {steps} steps, guidance {guidance:g}{phrases}{size}{half}, seed {args.seed}"


def generate_command(args: argparse.Namespace) -> tuple[Path, int]:
    """``minildm generate``: ``--num-images`` images per prompt, one figure (and ``--save-dir``)."""
    from minildm.outputs import write_results
    from minildm.pipelines import TextToImagePipeline
    from minildm.pipelines.composable import check_phrase_scale
    from minildm.sd_commands import short_titles
    from minildm.utils import check_positive_int

    check_positive_int("--num-images", args.num_images)
    check_phrase_scale(args.phrase_guidance)
    output, stable_diffusion = _check_sampling_args(args, len(args.prompts) * args.num_images)
    pipe, sampling = _load_pipeline(TextToImagePipeline, args, stable_diffusion)
    batch = [p for p in args.prompts for _ in range(args.num_images)]
    kwargs = dict(sampling.kwargs(args), phrase_guidance=args.phrase_guidance)
    images = pipe(batch, **kwargs).images
    titles = [p or "(empty prompt)" for p in batch]
    titles = short_titles(titles) if stable_diffusion else titles
    return write_results(images, titles, output, args.save_dir, _how(args, sampling, kwargs))


def edit_command(args: argparse.Namespace) -> tuple[Path, int]:
    """``minildm img2img`` / ``minildm inpaint``: the image (and mask) edited toward each prompt;
    the figure shows the original first."""
    import torch

    from minildm import sd_commands as sd
    from minildm.imageio import load_image, load_mask
    from minildm.outputs import write_results
    from minildm.pipelines import Img2ImgPipeline, InpaintPipeline
    from minildm.pipelines.img2img import check_init, check_strength
    from minildm.utils import check_positive_int

    inpaint = args.command == "inpaint"
    inputs = {"IMAGE": args.image, **({"MASK": args.mask} if inpaint else {})}
    # (+ the original, in the figure)
    output, stable_diffusion = _check_sampling_args(args, len(args.prompts) + 1, inputs)
    if not inpaint:
        check_strength(args.strength)
        if args.init == "inversion" and (args.sampler or DEFAULT_SAMPLER) != INVERSION_SAMPLER:
            raise ValueError(f"--init inversion runs DDIM backwards and needs --sampler {INVERSION_SAMPLER}, "
                             f"not {args.sampler}")
    elif args.resample is not None:  # unset: the pipeline's default for its sampler (check_resample)
        check_positive_int("--resample", args.resample)
        if args.resample > 1 and (args.sampler or DEFAULT_SAMPLER) not in ONE_STEP_SAMPLERS:
            raise ValueError(f"--resample needs --sampler {' or '.join(ONE_STEP_SAMPLERS)} (one-step), "
                             f"not {args.sampler}")
    if stable_diffusion:  # (the picture's own size, read before the model)
        image, mask = sd.load_sd_inputs(args, inpaint)
    pipe, sampling = _load_pipeline(InpaintPipeline if inpaint else Img2ImgPipeline, args, stable_diffusion)
    if stable_diffusion:
        sd.check_sd_image(image, pipe.size_multiple, pipe.vae.config.downsample_factor)
    else:
        image = load_image(args.image, pipe.vae.config.image_size)
    kwargs = sampling.kwargs(args)
    if inpaint:
        mask = mask if stable_diffusion else load_mask(args.mask, pipe.vae.config.image_size)
        resample = pipe.check_resample(args.resample)  # the value used, for the figure's caption
        images = pipe(args.prompts, image, mask, resample_steps=resample, **kwargs).images
        first = image * (1 - mask) + mask * 0.6  # the original, the repainted part shown grey
    else:
        init = check_init(args.init, pipe.scheduler)
        images = pipe(args.prompts, image, strength=args.strength, init=init, **kwargs).images
        first = image
    how = _how(args, sampling, kwargs) + (
        f", resample {resample}" if inpaint else f", strength {args.strength:g}, {init} start"
    )
    shown = torch.cat([first.to(images.device), images])
    titles = sd.short_titles(args.prompts) if stable_diffusion else args.prompts
    return write_results(images, ["original", *titles], output, args.save_dir, how, shown)


def evaluate_command(args: argparse.Namespace) -> str:
    """``minildm evaluate``: the shipped (or ``--checkpoint``) model measured on ``--n`` prompts per kind."""
    from minildm.metrics.evaluation import evaluate, format_report
    from minildm.metrics.prompts import PROMPT_KINDS
    from minildm.pipelines import TextToImagePipeline
    from minildm.pipelines.composable import check_phrase_scale
    from minildm.resources import check_fits, evaluation_bytes
    from minildm.utils import check_positive_int, get_device
    from minildm.validation import check_seed

    check_positive_int("--n", args.n)
    check_seed("--seed", args.seed)
    check_phrase_scale(args.phrase_guidance)
    prompts = args.n * len(PROMPT_KINDS)
    check_fits(f"evaluate --n {args.n} ({prompts} prompts)", evaluation_bytes(prompts), "cpu",
               "lower --n (default 64)")
    get_device(args.device)  # an unavailable device is refused before the model loads
    pipe = TextToImagePipeline.from_pretrained(args.checkpoint, device=args.device)
    report = evaluate(pipe, n=args.n, seed=args.seed, phrase_guidance=args.phrase_guidance,
                      num_inference_steps=pipe.default_steps, guidance_scale=pipe.default_guidance)
    return format_report(report)


def tokenizer_command(output: Path | None) -> None:
    """``minildm tokenizer``: the tokenizer built from the caption grammar, written as a folder."""
    from minildm.outputs import name_os_error
    from minildm.text import build_tokenizer, save_tokenizer, tokenizer_dir
    from minildm.utils import check_writable_folder

    folder = output or tokenizer_dir()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"-o {str(folder)!r} is a file; the tokenizer is a folder (tokenizer.json, "
                         "tokenizer_config.json), made if missing: name a folder")
    check_writable_folder(folder, "-o")
    tokenizer = build_tokenizer()
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:  # written beside, then moved in: a full disk leaves the earlier files whole
        save_tokenizer(tokenizer, staging)
        folder.mkdir(exist_ok=True)
        for file in sorted(staging.iterdir()):
            os.replace(file, folder / file.name)
    except Exception as err:
        named = name_os_error(err, f"cannot write the tokenizer to {str(folder)!r}")
        if named is None:
            raise
        raise named from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    path = folder
    print(f"tokenizer ({len(tokenizer)} tokens, context length {tokenizer.model_max_length}) "
          f"written to {path.resolve()}")


