"""``minildm retrain`` (``make checkpoints``, ``python -m minildm.retrain``): retrain every shipped
checkpoint from scratch with the package's own training command, in the order they depend on each
other, then print each one's quality beside the shipped one's.

    minildm retrain [--out-dir outputs/retrained] [--preset cpu|gpu] [--device D]
                    [--only KIND ...] [--jobs N] [--resume] [--quality-only] [--n N]

Order: toy2d, the VAE, the pixel DDPM, then (on the new VAE) the latent DDPM, the mini CLIP, and
text2img (the default: lesson 11's DiT, twice the steps; lesson 10 section 5) and text2img_unet (the
U-Net of lessons 06-09) on the new VAE and CLIP, and lesson 11's student distilled from the U-Net.
With ``--jobs N`` (default 4 on CUDA, 1 elsewhere) up to N runs go at once, each starting when those it
is trained on have finished: one run of these small models leaves a GPU mostly idle (its steps are bound
by kernel launches), so several share it well. Each run is ``python -m minildm train TASK --budget full
...`` with the options its record in :data:`minildm.names.CHECKPOINTS` gives (text2img ``--backbone
dit --clip-skip 2`` and twice the preset's steps, text2img_unet ``--clip-skip 2``, lcm
``--consistency-loss huber`` and the U-Net as its teacher) in a child process, its output in
``OUT/logs/KIND.log``, its training state in ``OUT/runs/KIND`` (an interrupted retrain continues with
``--resume``) and its checkpoint in ``OUT/checkpoints/KIND``. To ship the results, copy
``OUT/checkpoints/*`` over ``data/checkpoints/`` (and commit them).

On 2 CPU cores the "cpu" preset takes hours; on one H100/H200 the "gpu" preset takes minutes (the measured
times are in docs/results.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from minildm.names import BUDGETS, CHECKPOINTS, PRESETS

#: dependency order: a model is trained after the checkpoints it is trained on (each name is a folder
#: of data/checkpoints; what each one is: :data:`minildm.names.CHECKPOINTS`)
ORDER = tuple(CHECKPOINTS)


def train_argv(
    kind: str, out: Path, preset: str, device: str | None, resume: bool, budget: str = "full"
) -> list[str]:
    """The training command of the shipped checkpoint ``kind``, on the VAE and CLIP retrained before it."""
    shipped = CHECKPOINTS[kind]
    task = shipped.task
    argv = [sys.executable, "-m", "minildm", "train", task, "--budget", budget, "--preset", preset,
            "--run-dir", str(out / "runs" / kind), "--out", str(out / "checkpoints" / kind)]
    argv += ["--resume"] if resume and (out / "runs" / kind / "training_state.safetensors").exists() else [
        "--overwrite"]
    for flag, folder in (("--vae", shipped.vae), ("--text-encoder", shipped.text_encoder),
                         ("--teacher", shipped.teacher)):  # (lcm: distilled from the new U-Net)
        if folder is not None:
            argv += [flag, str(out / "checkpoints" / folder)]
    argv += list(shipped.options)
    if shipped.steps_factor != 1:
        argv += ["--steps", str(shipped.steps_factor * preset_steps(task, budget, preset))]
    if device is not None:
        argv += ["--device", device]
    return argv


def preset_steps(task: str, budget: str, preset: str) -> int:
    """The number of steps ``task``'s ``budget`` trains for on ``preset``."""
    from minildm.tasks import TRAIN_BUDGETS
    from minildm.tasks.common import train_config

    return train_config(TRAIN_BUDGETS[task], budget, 0, preset).steps


def _launch_order(kinds: list[str]) -> list[str]:
    """``kinds`` in the order to start them: what others wait for first (the VAE and CLIP, the U-Net
    lesson 11's student is distilled from), then the other text-to-image run (the longest), then the rest
    in ``ORDER``."""
    needed = {dep for kind in kinds for dep in CHECKPOINTS[kind].dependencies if dep in kinds}

    def rank(kind: str) -> int:
        return 0 if kind in needed else 1 if CHECKPOINTS[kind].task == "text2img" else 2

    return sorted(kinds, key=lambda kind: (rank(kind), ORDER.index(kind)))


def retrain(
    kinds: list[str], out: Path, preset: str, device: str | None, resume: bool, budget: str = "full",
    jobs: int = 1,
) -> dict[str, float]:
    """Run each training command (logs in ``out/logs``), at most ``jobs`` at once, each after those it
    is trained on; returns the seconds each took. A failed run stops the others (``--resume``
    continues them) and the retrain, naming its log."""
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MINILDM_PROGRESS="0")
    waiting, running, seconds = _launch_order(kinds), {}, {}
    while waiting or running:
        for kind in list(waiting):  # start what may start, up to ``jobs`` at once
            if len(running) < jobs and not _blocked(kind, waiting, running):
                waiting.remove(kind)
                running[kind] = _start_run(kind, out, preset, device, resume, budget, env)
        time.sleep(0.2)
        for kind, (process, began, log) in list(running.items()):
            status = process.poll()
            if status is None:
                continue
            del running[kind]
            seconds[kind] = time.perf_counter() - began
            if status != 0:
                for other, *_ in running.values():
                    other.terminate()
                tail = log.read_text().strip().splitlines()[-1:] or ["(empty log)"]
                raise RuntimeError(f"training {kind} failed (exit {status}): {tail[0]}; see {log}")
            print(f"  {kind} done in {seconds[kind]:.0f} s", flush=True)
    return seconds


def _blocked(kind: str, waiting: list[str], running: dict) -> bool:
    return any(dep in waiting or dep in running for dep in CHECKPOINTS[kind].dependencies)


def _start_run(kind: str, out: Path, preset: str, device: str | None, resume: bool, budget: str,
               env: dict) -> tuple[subprocess.Popen, float, Path]:
    log = out / "logs" / f"{kind}.log"
    argv = train_argv(kind, out, preset, device, resume, budget)
    now = time.strftime("%H:%M:%S")
    print(f"[{now}] training {kind}: {' '.join(argv[1:])}  (log: {log})", flush=True)
    with open(log, "w") as f:  # the child keeps its own handle
        process = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, env=env)
    return process, time.perf_counter(), log


def quality_table(kinds: list[str], out: Path, device: str | None, n: int | None) -> str:
    """Each kind's quality figures, shipped beside retrained (:mod:`minildm.metrics.checkpoint_quality`)."""
    from minildm.metrics.checkpoint_quality import checkpoint_quality

    new = out / "checkpoints"
    lines = [f"{'checkpoint':<14} {'figure':<18} {'shipped':>10} {'retrained':>10}   n"]
    for kind in kinds:
        shipped = checkpoint_quality(kind, None, n, device)
        retrained = checkpoint_quality(kind, new / kind, n, device, vae=new / "vae", clip=new / "clip")
        for name in (k for k in shipped if k != "n"):
            lines.append(f"{kind:<14} {name:<18} {shipped[name]:>10} {retrained[name]:>10}   {shipped['n']}")
    return "\n".join(lines)


DESCRIPTION = "retrain every shipped checkpoint in order, then compare each with the shipped one"


def main(argv: list[str] | None = None, prog: str = "python -m minildm.retrain") -> int:
    """Run ``minildm retrain`` (``prog``: the name its usage shows); return the exit status."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("--out-dir", type=Path, default=Path("outputs/retrained"))
    parser.add_argument("--preset", choices=PRESETS, default=None,
                        help="default: gpu on CUDA, else cpu")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    parser.add_argument("--only", nargs="+", choices=ORDER, default=None,
                        help="retrain these kinds only (those they depend on must exist in OUT)")
    parser.add_argument("--resume", action="store_true", help="continue the runs an interruption left")
    parser.add_argument("--quality-only", action="store_true", help="skip training; print the table")
    parser.add_argument("--n", type=int, default=None, help="samples per quality figure (default per kind)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="trainings at once, each after those it is trained on "
                             "(default: 4 on CUDA, where one run leaves the GPU mostly idle; else 1)")
    parser.add_argument("--budget", choices=BUDGETS, default="full",
                        help="full (default); quick trains a few steps, to try the pipeline")
    args = parser.parse_args(argv)
    from minildm.tasks.common import get_preset
    from minildm.utils import get_device

    device = get_device(args.device)  # a device this machine lacks is refused before any work
    preset = get_preset(args.preset, device)
    kinds = [k for k in ORDER if args.only is None or k in args.only]
    jobs = args.jobs if args.jobs is not None else (4 if device.type == "cuda" else 1)
    if jobs < 1:
        parser.error(f"--jobs must be at least 1, got {jobs}")
    began = time.perf_counter()
    if not args.quality_only:
        seconds = retrain(kinds, args.out_dir, preset, args.device, args.resume, args.budget, jobs)
        total = time.perf_counter() - began
        print(f"\nretrained {len(kinds)} checkpoint(s) on {device} ({preset} preset, {jobs} at once) "
              f"in {total:.0f} s: "
              + ", ".join(f"{k} {s:.0f} s" for k, s in seconds.items()), flush=True)
    print("\n" + quality_table(kinds, args.out_dir, args.device, args.n))
    print(f"\n(all in {time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
