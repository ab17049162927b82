"""minildm: a tiny latent diffusion model (Stable Diffusion's recipe) built from scratch.

Each module backs one lesson of the course in ``notebooks/``::

    minildm.data       the shapes world (captions, renderer, dataset), 2-D toy data, MNIST
    minildm.metrics    the judge that checks an image against its caption
    minildm.utils      device, seeds, the training budget, image helpers
"""

__version__ = "0.1.0"
