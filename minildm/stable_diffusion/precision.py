"""Half precision for the U-Net on a GPU: SD 1.5's U-Net holds 860M weights, 3.4 GB in float32 and
1.7 GB in float16, and a GPU's tensor cores run float16 matrix products several times faster.

Only the U-Net is halved. The sampler keeps its latents and the scheduler's arithmetic in float32
(the running sum of many small steps is where float16's 11 bits of mantissa would hurt), and the
VAE and the text encoder, about a fifth of the weights, stay in float32 too (SD's VAE decoder can
overflow float16's largest number, 65504, on some pictures):

    z_t (float32) --.half()--> U-Net (float16) --.float()--> prediction (float32) --> scheduler.step
"""

from __future__ import annotations

import torch

#: the names ``--dtype`` takes, and the torch dtype of each
DTYPES = {"float32": torch.float32, "float16": torch.float16}


class HalfPrecisionUNet(torch.nn.Module):
    """``unet`` in float16 behind a float32 face: inputs are cast to float16, the prediction comes
    back in float32. It keeps the U-Net's ``config``, so a pipeline takes it in the U-Net's place:
    ``pipe.backbone = HalfPrecisionUNet(pipe.backbone)`` (on a CUDA or MPS device)."""

    def __init__(self, unet: torch.nn.Module, dtype: torch.dtype = torch.float16) -> None:
        super().__init__()
        self.unet = unet.to(dtype)
        self.dtype = dtype
        self.config = getattr(unet, "config", None)

    def forward(
        self, x: torch.Tensor, timesteps: torch.Tensor | int | float, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The U-Net's prediction at ``(x, timesteps, context)``, computed in half precision."""
        context = None if context is None else context.to(self.dtype)
        return self.unet(x.to(self.dtype), timesteps, context).float()


def check_dtype(dtype: str, device: torch.device, flag: str = "--dtype") -> torch.dtype:
    """``dtype`` by name; float16 only on a CUDA or MPS device (on the CPU many float16 kernels are
    missing or slower than float32's, and the memory saved matters on a GPU)."""
    if dtype not in DTYPES:
        raise ValueError(f"{flag} must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if DTYPES[dtype] == torch.float16 and device.type not in ("cuda", "mps"):
        raise ValueError(
            f"{flag} float16 needs a GPU (--device cuda or mps), but this run computes on {device.type}: "
            "leave it out (float32), the CPU has no fast float16 kernels"
        )
    return DTYPES[dtype]
