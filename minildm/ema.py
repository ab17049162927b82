"""The exponential moving average of a model's weights, kept beside the training weights and saved
as the checkpoint (every diffusion model since DDPM samples with it)."""

from __future__ import annotations

import torch


class EMA:
    """Exponential moving average of a model's weights: $\\theta_{ema} \\leftarrow d\\,\\theta_{ema}
    + (1 - d)\\,\\theta$. Sampling with the EMA weights gives visibly cleaner images than the last
    step's weights, because the average smooths out the noise of the last updates."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        # warm the average up: early on, d is smaller so the EMA follows the fast-moving weights
        d = min(self.decay, (1 + step) / (10 + step))
        shadows, weights = [], []
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                shadows.append(self.shadow[k])
                weights.append(v)
            else:
                self.shadow[k].copy_(v)
        # theta_ema <- d theta_ema + (1 - d) theta, over every tensor at once (one kernel launch per
        # operation on a GPU instead of two per tensor; the same arithmetic, so the CPU result is
        # bit-identical to the per-tensor loop)
        torch._foreach_mul_(shadows, d)
        torch._foreach_add_(shadows, weights, alpha=1 - d)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)
