"""minildm: a tiny latent diffusion model (Stable Diffusion's recipe) built from scratch.

Each module backs one lesson of the course in ``notebooks/`` (``docs/architecture.md`` maps them)::

    minildm.data              the shapes world (captions, renderer, dataset), 2-D toy data, MNIST  (00)
    minildm.schedules         noise schedules: how much noise at each training step              (01)
    minildm.diffusion         the forward process, its posterior and the training objective     (01, 02)
    minildm.schedulers        DDPM, DDIM, Euler, DPM-Solver++ with diffusers' API                (02, 07, 11)
    minildm.sampling          the one sampling loop, over a denoiser                             (02, 07)
    minildm.guidance          classifier-free guidance, once: CFGDenoiser                        (06, 10)
    minildm.nn                ResBlock, attention, SpatialTransformer, the U-Net, the DiT        (03, 06, 11)
    minildm.vae               AutoencoderKL and its loss                                         (04)
    minildm.text              the tokenizer, the mini CLIP, the frozen text encoder              (06)
    minildm.pipelines         latent, text-to-image, img2img and inpainting pipelines            (05-08)
    minildm.metrics           the judge, rates with intervals, CLIP score, Frechet distance      (09, 10)
    minildm.stable_diffusion  SD 1.x / 2.x weights in these modules, and back to diffusers       (12)
    minildm.training, minildm.tasks, minildm.checkpoints   training, its recipes, checkpoint files
    minildm.checkpoint_config, minildm.backbones   a config.json with types; the networks it may name
    minildm.names             names, defaults and one record per shipped checkpoint (no torch)
    minildm.cli, minildm.commands   the ``minildm`` command;  minildm.classroom   exercises, student site
    minildm.validation        the argument checks: numbers, ints, probabilities, seeds (no torch)
    minildm.utils             device, the training budget, image helpers
"""

__version__ = "0.1.0"
