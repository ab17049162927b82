"""The names and defaults the command line and the library share, and one record per shipped checkpoint.

Nothing here imports torch (nor a module that does): ``minildm --help`` reads these without loading
a model, and the library modules import them from here (``minildm.schedulers.SCHEDULERS`` is keyed by
:data:`SAMPLER_NAMES`, ``minildm.pipelines.DEFAULT_STRENGTH`` is :data:`DEFAULT_STRENGTH`, ...), so
each name has one home.

:data:`CHECKPOINTS` describes every folder of ``data/checkpoints``: the model its config holds, the
``train`` command that makes it (with the options beyond the task's defaults), the checkpoints it is
trained on, and the figure that measures it (:mod:`minildm.metrics.checkpoint_quality`).
``minildm retrain`` (:mod:`minildm.retrain`) retrains them in this order.
"""

from __future__ import annotations

from dataclasses import dataclass

# ----------------------------------------------------------------------------- training

#: What ``minildm train`` trains, in lesson order: one recipe per kind (:data:`minildm.tasks.TASKS`).
TRAIN_KINDS: tuple[str, ...] = ("toy2d", "pixel_ddpm", "vae", "latent_ddpm", "clip", "text2img", "lcm")
#: Short names ``train`` also accepts (the lessons' words).
TRAIN_ALIASES: dict[str, str] = {"pixel": "pixel_ddpm", "latent": "latent_ddpm"}
#: The training budgets (``--budget``, ``$MINILDM_BUDGET``) and the full budget's presets (``--preset``).
BUDGETS: tuple[str, ...] = ("quick", "full")
PRESETS: tuple[str, ...] = ("cpu", "gpu")
#: text2img's networks: the U-Net of lessons 06-09, lesson 11's DiT (``--backbone``).
BACKBONES: tuple[str, ...] = ("unet", "dit")
#: lesson 11's distances between the student and its target (``--consistency-loss``).
CONSISTENCY_LOSSES: tuple[str, ...] = ("l2", "huber")

# ----------------------------------------------------------------------------- sampling

#: The reverse processes by the names ``--sampler`` and :data:`minildm.schedulers.SCHEDULERS` use.
SAMPLER_NAMES: tuple[str, ...] = ("ddpm", "ddim", "dpm++", "euler", "euler_a", "lcm")
#: How a figure's caption names each sampler.
SAMPLER_TITLES: dict[str, str] = {
    "ddpm": "DDPM", "ddim": "DDIM", "dpm++": "DPM-Solver++ 2M", "euler": "Euler",
    "euler_a": "Euler ancestral", "lcm": "LCM (distilled student)",
}
#: The text-to-image pipelines' sampler (a distilled student's is "lcm").
DEFAULT_SAMPLER = "ddim"
#: The samplers that take one step at a time, which RePaint's resampling needs (inpainting).
ONE_STEP_SAMPLERS: tuple[str, ...] = ("ddim", "ddpm")
#: The sampler DDIM inversion runs backwards (img2img's "inversion" start).
INVERSION_SAMPLER = "ddim"
#: The precisions of a Stable Diffusion U-Net (``--dtype``).
DTYPES: tuple[str, ...] = ("float32", "float16")

#: img2img's strength, chosen in lesson 08 (notebooks/08_img2img_and_inpainting.ipynb): it recolours an
#: object reliably while its position and size survive.
DEFAULT_STRENGTH = 0.8
#: RePaint's resampling: each inpainting step is redone this many times (``--resample``).
DEFAULT_RESAMPLE = 3
#: How img2img makes its starting latent (:mod:`minildm.pipelines.img2img`); lesson 08 compares the two.
IMG2IMG_INITS: tuple[str, ...] = ("inversion", "noise")

# ----------------------------------------------------------------------------- shipped checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """One shipped checkpoint, the folder ``data/checkpoints/<folder>``, and how it is made.

    ``task`` is the ``minildm train`` kind that trains it, ``kind`` its config's ``"kind"`` (the model
    :func:`minildm.checkpoints.build_model` builds); ``vae``, ``text_encoder`` and ``teacher`` name the
    shipped folders it is trained on (``--vae``, ``--text-encoder``, ``--teacher``); ``options`` are the
    ``train`` options beyond the task's defaults, ``steps_factor`` a multiple of the preset's steps;
    ``quality`` names its figure in :mod:`minildm.metrics.checkpoint_quality`, measured on ``quality_n``
    samples by default."""

    folder: str
    task: str
    kind: str
    quality: str
    quality_n: int
    vae: str | None = None
    text_encoder: str | None = None
    teacher: str | None = None
    options: tuple[str, ...] = ()
    steps_factor: int = 1

    @property
    def dependencies(self) -> tuple[str, ...]:
        """The shipped folders it is trained on (retrained first)."""
        return tuple(d for d in (self.vae, self.text_encoder, self.teacher) if d is not None)


_RECORDS = (
    Checkpoint("toy2d", "toy2d", "toy2d", quality="toy2d", quality_n=4000),
    Checkpoint("vae", "vae", "vae", quality="vae", quality_n=500),
    Checkpoint("pixel_ddpm", "pixel_ddpm", "pixel_ddpm", quality="pixel_ddpm", quality_n=256),
    Checkpoint("latent_ddpm", "latent_ddpm", "latent_ddpm", quality="latent_ddpm", quality_n=256, vae="vae"),
    Checkpoint("clip", "clip", "clip", quality="clip", quality_n=500),
    # the default text-to-image model: lesson 11's DiT, reading the text encoder's embeddings alone
    # (lesson 10, section 5), trained for twice the task's steps (at the U-Net's CPU time it composes best)
    Checkpoint("text2img", "text2img", "text2img", quality="text2img", quality_n=128, vae="vae",
               text_encoder="clip", options=("--backbone", "dit", "--clip-skip", "2"), steps_factor=2),
    # the U-Net of lessons 06-09
    Checkpoint("text2img_unet", "text2img", "text2img", quality="text2img", quality_n=128, vae="vae",
               text_encoder="clip", options=("--clip-skip", "2")),
    # lesson 11's few-step student, distilled from the U-Net with the pseudo-Huber distance; measured at
    # its own default (4 LCM steps, guidance 1)
    Checkpoint("lcm", "lcm", "text2img", quality="text2img", quality_n=128, vae="vae", text_encoder="clip",
               teacher="text2img_unet", options=("--consistency-loss", "huber")),
)

#: Every shipped checkpoint by its folder, in dependency order: each after those it is trained on.
CHECKPOINTS: dict[str, Checkpoint] = {record.folder: record for record in _RECORDS}

#: The models a checkpoint config may hold (its ``"kind"``), in lesson order, each with the backbones it may
#: be built on: the one section of its config's ``"model"`` entry names it (:mod:`minildm.backbones`).
KIND_BACKBONES: dict[str, tuple[str, ...]] = {
    "toy2d": ("mlp",), "pixel_ddpm": ("unet",), "vae": ("vae",), "latent_ddpm": ("unet",), "clip": ("clip",),
    "text2img": BACKBONES,
}
MODEL_KINDS: tuple[str, ...] = tuple(KIND_BACKBONES)
assert {r.kind for r in _RECORDS} <= set(MODEL_KINDS), "a shipped checkpoint of an unknown kind"
