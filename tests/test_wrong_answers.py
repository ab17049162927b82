"""Every exercise's check cell rejects the mistakes a student makes, with its helpful message.

For each exercise of lessons 00-11 the table ``WRONG`` keeps at least one plausible wrong answer: an edit
``(old, new)`` of the teacher's solution cell (noise drawn without the generator, the mean instead of the
maximum, a square root forgotten...). The test runs the lesson's cells up to the exercise once per lesson
(``MINILDM_PROGRESS=0``, the quick budget; the slow cells no check needs are left out, see ``SKIP``), then
for each wrong answer runs the edited solution cell and the exercise's own check cell in a copy of that
namespace, and asserts the check fails with its message (a distinctive part of it, ``expect``).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from minildm.classroom.exercises import nbgrader

pytestmark = pytest.mark.slow  # runs each lesson's notebook cells, up to its exercises

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

#: cells no check needs and too slow to run here: (lesson, the start of the cell's source)
SKIP = {
    "02": ("cfg = task.train_config", "@torch.no_grad()\ndef ddpm_sample_by_hand",
           "start = time.perf_counter()\nsamples_module", "with torch.no_grad():\n    x_mean_only"),
    "04": ("kl_weights = [0.0",),
    "05": ("print(task.train_config)", "sampled = pipe(64"),
    "06": ("task = clip_task(", "# clip_skip=2: the U-Net reads"),
    "07": ("# NBVAL_CHECK_OUTPUT\nprompts = [", "n_spacing = ", "ref_steps = ", "n_judge = "),
    "08": ("cases = recolour_cases(", "edited_inv, kept_inv"),
    "10": ("kinds = composition_prompts(", "def attention_maps(", "scales = [1.0]"),
    "11": ("reference = sample_toy(", "n_per_kind = ", "prompts = [\"a red circle to the left",
           "from minildm.tasks import TASKS"),
}
#: set-up made smaller where a check needs a slow cell's results: (lesson, [(old, new)] in the cells' sources)
PATCH = {
    "04": [('ae_steps = 60 if budget == "quick" else 2_000', "ae_steps = 2"),  # section 2's plain autoencoder
           ('assert np.mean([log["mse"] for log in ae_logs[-5:]])', "assert True or np.mean([")],
    "05": [("assert sum(result.losses[-5:]) / 5 < sum(result.losses[:5]) / 5", "pass")],  # training skipped
    "09": [('N_KIND = 32 if budget == "quick" else 256', "N_KIND = 4")],  # 16 prompts: what the checks read
}


@dataclass(frozen=True)
class Wrong:
    """A wrong answer to exercise ``exercise`` ("8.1"): ``old`` replaced by ``new`` in the teacher's
    solution cell; the check must fail with a message containing ``expect``."""

    exercise: str
    name: str
    old: str
    new: str
    expect: str

    @property
    def id(self) -> str:
        lesson, k = self.exercise.split(".")
        return f"{int(lesson):02d}.{k}-{self.name}"


def lesson_path(lesson: str) -> Path:
    return next(NOTEBOOKS.glob(f"{lesson}_*.ipynb"))


@contextlib.contextmanager
def lesson_environment():
    """The notebooks' conditions: run from notebooks/, quick budget, no progress bars, no windows; the
    thread count and the working directory are given back afterwards."""
    import matplotlib

    matplotlib.use("Agg")
    import torch

    saved_env = {k: os.environ.get(k) for k in ("MINILDM_PROGRESS", "MINILDM_BUDGET")}
    os.environ.update(MINILDM_PROGRESS="0", MINILDM_BUDGET="quick")
    threads, cwd = torch.get_num_threads(), os.getcwd()
    os.chdir(NOTEBOOKS)
    try:
        yield
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Exercise:
    """An exercise's solution and check cells, and the lesson's namespace just before its check ran."""

    solution: str
    check: str
    namespace: dict


def _exercise_number(check: str) -> str:
    first = check.split("\n", 1)[0]
    assert first.startswith("# Check: exercise "), f"a check cell starts '# Check: exercise N.k': {first}"
    return first.removeprefix("# Check: exercise ").strip()


_EXECUTED: dict[str, dict[str, Exercise] | AssertionError] = {}


def executed(lesson: str) -> dict[str, Exercise]:
    """:func:`run_lesson`, once per lesson (the last lesson run is kept, its failure too)."""
    if lesson not in _EXECUTED:
        _EXECUTED.clear()
        try:
            _EXECUTED[lesson] = run_lesson(lesson)
        except AssertionError as error:
            _EXECUTED[lesson] = error
    result = _EXECUTED[lesson]
    if isinstance(result, AssertionError):
        raise result
    return result


def run_lesson(lesson: str) -> dict[str, Exercise]:
    """Run the lesson's code cells up to its last check (the teacher's solutions and checks included,
    ``SKIP`` left out) in one namespace; return each exercise with a copy of the namespace taken just
    before its check cell ran."""
    import matplotlib.pyplot as plt

    cells = nbformat.read(str(lesson_path(lesson)), as_version=4).cells
    last = max(i for i, c in enumerate(cells) if nbgrader(c).get("grade") and c.cell_type == "code")
    for old, _ in PATCH.get(lesson, []):
        assert any(old in c.source for c in cells), f"lesson {lesson}: no cell holds {old!r} any more"
    namespace: dict = {"__name__": "__main__"}
    exercises: dict[str, Exercise] = {}
    solution, broken = None, []
    with lesson_environment():
        for index, cell in enumerate(cells[: last + 1]):
            if cell.cell_type != "code" or cell.source.startswith(SKIP.get(lesson, ())):
                continue
            meta, source = nbgrader(cell), cell.source
            for old, new in PATCH.get(lesson, []):
                source = source.replace(old, new)
            if meta.get("solution"):
                solution = cell.source
            elif meta.get("grade"):
                assert solution is not None, f"lesson {lesson}: check cell {index} has no solution before it"
                exercises[_exercise_number(cell.source)] = Exercise(solution, cell.source, dict(namespace))
            try:
                exec(compile(source, f"{lesson}:cell {index}", "exec"), namespace)
            except Exception as error:
                # a cell that needs a skipped one is not needed by the checks, unless an exercise fails
                broken.append(f"cell {index}: {type(error).__name__}: {error}")
                if meta.get("solution") or meta.get("grade"):
                    raise AssertionError(f"lesson {lesson}: the teacher's exercise cell {index} (0-based "
                                         f"index) failed here; cells failed before it: {broken}") from error
            plt.close("all")
    return exercises


NOISY = "noise = torch.randn(z0.shape, generator=generator).to(z0.device)"
WRONG = [
    # 00 · the shapes world
    Wrong("0.1", "channel-axis-not-moved", "x.movedim(-1, -3).float()", "x.float()",
          "did you move the channel axis"),
    Wrong("0.1", "divided-by-255", "/ 127.5 - 1.0", "/ 255.0", "black must be -1, 255 must be +1"),
    Wrong("0.2", "sub-samples-at-pixel-corners", "(np.arange(image_size * s) + 0.5) / s",
          "np.arange(image_size * s) / s", "Are the sub-samples at j + (k + 0.5) / s"),
    Wrong("0.2", "x-and-y-swapped", "dx, dy = centres[None, :] - cx, centres[:, None] - cy",
          "dx, dy = centres[:, None] - cx, centres[None, :] - cy", "is x the column and y the row"),
    Wrong("0.2", "truncated-not-rounded", "np.rint(coverage[..., None] * np.asarray(rgb, dtype=np.float64))",
          "(coverage[..., None] * np.asarray(rgb, dtype=np.float64))", "round the pixel values with np.rint"),
    Wrong("0.3", "y-grows-upwards", '"top" if cy < side / 2', '"top" if cy > side / 2',
          "Remember that y grows downwards"),
    Wrong("0.3", "no-dividing-line", "if abs(cx - side / 2) < 0.5 or abs(cy - side / 2) < 0.5:", "if False:",
          "is in no quadrant"),
    # 01 · forward diffusion
    Wrong("1.1", "square-roots-forgotten", "abar.sqrt() * x0 + (1 - abar).sqrt() * noise",
          "abar * x0 + (1 - abar) * noise", "square roots of abar_t and 1 - abar_t"),
    Wrong("1.1", "image-shaped-reshape", "reshape(-1, *([1] * (x0.ndim - 1)))", "reshape(-1, 1, 1, 1)",
          "does sqrt(abar_t) broadcast over every dim"),
    Wrong("1.2", "abar-t-not-the-ratio", "ratio = alphas_cumprod[t] / alphas_cumprod[s]",
          "ratio = alphas_cumprod[t]", "not one noising step"),
    Wrong("1.2", "variance-not-square-rooted", "(1 - ratio).sqrt() * noise", "(1 - ratio) * noise",
          "not one noising step"),
    Wrong("1.3", "cumulative-product-not-undone", "return 1 - alphas", "return 1 - abar",
          "did you undo the cumulative product"),
    # 02 · reverse diffusion
    Wrong("2.1", "sqrt-of-1-minus-abar-forgotten", "(1 - abar_t).sqrt() * eps", "(1 - abar_t) * eps",
          "not the posterior mean"),
    Wrong("2.1", "not-divided-by-sqrt-alpha", ") / alpha_t.sqrt()", ")", "divided by sqrt(alpha_t)"),
    Wrong("2.2", "log-variances-swapped", "var_p.log() - var_q.log()", "var_q.log() - var_p.log()",
          "the order log var_p - log var_q"),
    Wrong("2.2", "mean-not-sum", ".sum(-1)", ".mean(-1)", "KL values differ"),
    Wrong("2.3", "one-step-beta", "beta = 1 - abar_t / abar_prev",
          "beta = 1 - abar_t / alphas_cumprod[t - 1] if t > 0 else 1 - abar_t", "the effective beta"),
    Wrong("2.3", "noise-at-t-0", "    if t == 0:\n        return mean\n", "",
          "the last step (t = 0) adds no noise, whatever the variance type"),
    # 03 · the U-Net
    Wrong("3.1", "unbiased-variance", "groups.var(dim=-1, unbiased=False, keepdim=True)",
          "groups.var(dim=-1, keepdim=True)", "biased variance"),
    Wrong("3.1", "statistics-over-the-batch", "mean = groups.mean(dim=-1, keepdim=True)",
          "mean = groups.mean(dim=(0, 2), keepdim=True)", "not over the batch"),
    Wrong("3.2", "scores-not-scaled", "/ math.sqrt(attn.dim_head)", "", "scale by sqrt(dim_head)"),
    Wrong("3.2", "softmax-over-queries", "math.sqrt(attn.dim_head), dim=-1)",
          "math.sqrt(attn.dim_head), dim=-2)", "softmax over keys"),
    Wrong("3.3", "v-sign-flipped", "return abar.sqrt() * eps - (1 - abar).sqrt() * x0",
          "return (1 - abar).sqrt() * x0 - abar.sqrt() * eps", "v differs from get_velocity"),
    Wrong("3.3", "x0-hat-plus-v", "x0_hat = abar.sqrt() * x_t - (1 - abar).sqrt() * v",
          "x0_hat = abar.sqrt() * x_t + (1 - abar).sqrt() * v", "x0_hat differs from predict_x0_from_v"),
    # 04 · the VAE
    Wrong("4.1", "log-variance-not-clamped", "logvar = logvar.clamp(-30.0, 20.0)", "",
          "needs the clamp: z differs"),
    Wrong("4.1", "sigma-is-exp-logvar", "torch.exp(0.5 * logvar) * eps", "torch.exp(logvar) * eps",
          "ordinary: z differs"),
    Wrong("4.1", "kl-averaged-not-summed", ".sum(dim=(1, 2, 3))", ".mean(dim=(1, 2, 3))",
          "the KL differs from posterior.kl()"),
    Wrong("4.2", "kl-not-divided-by-chw", "kl_weight * kl / x[0].numel()", "kl_weight * kl",
          "divided by C * H * W of one image"),
    Wrong("4.2", "kl-summed-over-the-batch", "posterior.kl().mean()", "posterior.kl().sum()",
          "averaged over the batch"),
    Wrong("4.3", "means-not-samples", "vae.encode(images).sample(generator)", "vae.encode(images).mean",
          "1 / std of *sampled* latents"),
    # 05 · latent diffusion
    Wrong("5.1", "posterior-noise-without-generator", "torch.randn(mean[idx].shape, generator=generator)",
          "torch.randn(mean[idx].shape)", "Draw from the one generator"),
    Wrong("5.1", "epsilon-target", "v.to(device))", "eps.to(device))", "the v target"),
    Wrong("5.2", "latents-multiplied-by-scale", "vae.decode(z / scale)", "vae.decode(z * scale)",
          "decode z_0 / s (divide, not multiply)"),
    Wrong("5.2", "step-noise-without-generator", "scheduler.step(output, t, z, generator=generator)",
          "scheduler.step(output, t, z)", "give scheduler.step the same generator"),
    Wrong("5.3", "groups-ignored", "(conv.in_channels // conv.groups)", "conv.in_channels",
          "divide in_channels by groups"),
    Wrong("5.3", "padding-ignored", "(height + 2 * ph - kh) // sh + 1", "(height - kh) // sh + 1",
          "Check the output size"),
    # 06 · text conditioning
    Wrong("6.1", "embeddings-not-normalised", "u = F.normalize(image_embeds, dim=-1)", "u = image_embeds",
          "normalise both embeddings"),
    Wrong("6.1", "rows-only", "(F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2",
          "F.cross_entropy(logits, target)", "average the two"),
    Wrong("6.2", "two-unet-calls",
          "out = unet(torch.cat([z, z]), torch.cat([t, t]), torch.cat([uncond, cond]))\n"
          "    out_uncond, out_cond = out.chunk(2)",
          "out_uncond, out_cond = unet(z, t, uncond), unet(z, t, cond)", "call it once, on a doubled batch"),
    Wrong("6.2", "halves-swapped", "torch.cat([uncond, cond])", "torch.cat([cond, uncond])",
          "Is the first half of the batch the empty prompt"),
    Wrong("6.3", "textbook-interval",
          "half = z / denominator * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))",
          "centre, half = p, z * math.sqrt(p * (1 - p) / n)", "Check z^2 / (2n) in the centre"),
    # 07 · DDIM
    Wrong("7.1", "sigma-without-eta", "sigma = eta * (", "sigma = (", "eta = 0.0: not DDIMScheduler.step"),
    Wrong("7.1", "v-read-as-eps", "eps_hat = alpha_bar_t.sqrt() * v + (1 - alpha_bar_t).sqrt() * x_t",
          "eps_hat = v", "check x0_hat and eps_hat from v"),
    Wrong("7.2", "trailing-truncated", "int(np.round(T - i * T / n)) - 1", "int(T - i * T / n) - 1",
          "trailing the real step T / n rounded with np.round"),
    Wrong("7.2", "leading-real-step", "i * (T // n)", "int(i * T / n)", "leading uses the integer step"),
    Wrong("7.2", "smallest-first", "sorted(steps, reverse=True)", "sorted(steps)", "largest first"),
    Wrong("7.3", "v-read-at-the-next-level",
          "x0_hat = alpha_bar_prev.sqrt() * x_prev - (1 - alpha_bar_prev).sqrt() * v",
          "x0_hat = alpha_bar_t.sqrt() * x_prev - (1 - alpha_bar_t).sqrt() * v",
          "at the level of the sample"),
    # 08 · img2img and inpainting
    Wrong("8.1", "noise-without-generator", NOISY, "noise = torch.randn(z0.shape).to(z0.device)",
          "draw the noise with ONE torch.randn"),
    Wrong("8.1", "strength-steps-skipped",
          "start = num_inference_steps - int(num_inference_steps * strength)",
          "start = int(num_inference_steps * strength)", "skip the first n - floor(n * strength)"),
    Wrong("8.2", "mean-instead-of-max", "blocks.amax(dim=(3, 5))", "blocks.mean(dim=(3, 5))",
          "not the mean"),
    Wrong("8.3", "mask-inverted", "return m * z + (1 - m) * known", "return (1 - m) * z + m * known",
          "where m = 0 the result must be z0 noised"),
    Wrong("8.3", "square-roots-forgotten", "alpha_bar.sqrt() * z0 + (1 - alpha_bar).sqrt() * noise",
          "alpha_bar * z0 + (1 - alpha_bar) * noise", "sqrt(abar) z0 + sqrt(1 - abar) noise"),
    # 09 · evaluation
    Wrong("9.1", "n-is-every-verdict", "return {name: (p, n) for name, (p, n) in counts.items()}",
          "return {name: (p, len(verdicts)) for name, (p, n) in counts.items()}",
          "n counts the verdicts whose checks name"),
    Wrong("9.2", "features-not-normalised", "u = image_features / image_features.norm(dim=-1, keepdim=True)",
          "u = image_features", "normalise them first"),
    Wrong("9.2", "negative-cosine-kept", ".sum(dim=-1).clamp(min=0)", ".sum(dim=-1)",
          "a negative cosine must count as 0"),
    Wrong("9.2", "matrix-not-rows", "(u * v).sum(dim=-1)", "(u @ v.T)",
          "one score per (image, caption) pair"),
    Wrong("9.3", "factor-2-forgotten", "- 2 * tr_sqrt", "- tr_sqrt", "2 * sum of sqrt(eigenvalues"),
    # 10 · composition
    Wrong("10.1", "any-same-colour", "drawn[0] == drawn[1] and drawn[0] in named", "drawn[0] == drawn[1]",
          "drawn ('green', 'green'): expected False"),
    Wrong("10.1", "same-colour-named-twice", "named[0] != named[1] and ", "",
          "names one colour for both objects"),
    Wrong("10.2", "weights-ignored", "phrase_scale * w.reshape(-1, 1, 1, 1) * (out - out_uncond)",
          "phrase_scale * (out - out_uncond)", "phrase_scale * weight * (phrase - uncond)"),
    Wrong("10.3", "sqrt-forgotten", "se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)",
          "se = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2", "half-width 1.96 * sqrt"),
    Wrong("10.3", "p1-minus-p2", "return p2 - p1 - 1.96 * se, p2 - p1 + 1.96 * se",
          "return p1 - p2 - 1.96 * se, p1 - p2 + 1.96 * se", "centred on p2 - p1"),
    # 11 · outlook
    Wrong("11.1", "step-of-the-wrong-sign", "x + (sigma_next - sigma) * derivative",
          "x + (sigma - sigma_next) * derivative", "moves by (sigma_next - sigma) times the slope"),
    Wrong("11.2", "r-inverted", "r = h_prev / h", "r = h / h_prev", "r = h_prev / h"),
    Wrong("11.3", "channels-first-in-a-token", "x.permute(0, 2, 4, 3, 5, 1)", "x.permute(0, 2, 4, 1, 3, 5)",
          "order each token as (row, column, channel)"),
    Wrong("11.4", "guidance-forgotten", "v = v_uncond + w * (v_cond - v_uncond)", "v = v_cond",
          "guide v first"),
    Wrong("11.4", "student-read-at-t", "x0_student = abar_prev.sqrt() * z_hat - (1 - abar_prev).sqrt()",
          "x0_student = abar_t.sqrt() * z_hat - (1 - abar_t).sqrt()", "then f at t'"),
]


def lesson_of(wrong: Wrong) -> str:
    return f"{int(wrong.exercise.split('.')[0]):02d}"


@pytest.mark.parametrize("wrong", sorted(WRONG, key=lambda w: lesson_of(w)), ids=lambda w: w.id)
def test_check_rejects_wrong_answer(wrong: Wrong) -> None:
    exercise = executed(lesson_of(wrong)).get(wrong.exercise)
    assert exercise is not None, f"lesson {lesson_of(wrong)} has no check cell for exercise {wrong.exercise}"
    assert wrong.old in exercise.solution, f"exercise {wrong.exercise}: {wrong.old!r} not in its solution"
    namespace = dict(exercise.namespace)
    with lesson_environment():
        exec(compile(exercise.solution.replace(wrong.old, wrong.new), "wrong answer", "exec"), namespace)
        with pytest.raises(AssertionError) as failure:
            exec(compile(exercise.check, f"check {wrong.exercise}", "exec"), namespace)
    assert wrong.expect in str(failure.value), (
        f"exercise {wrong.exercise} rejected {wrong.name} with another message: {failure.value}")


def test_every_exercise_has_a_wrong_answer() -> None:
    numbers = set()
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        if int(path.name[:2]) > 11:
            continue
        for cell in nbformat.read(str(path), as_version=4).cells:
            if cell.cell_type == "code" and nbgrader(cell).get("grade"):
                numbers.add(_exercise_number(cell.source))
    assert numbers and numbers <= {w.exercise for w in WRONG}, (
        f"exercises without a wrong answer here: {sorted(numbers - {w.exercise for w in WRONG})}")
