"""The released AnyView sampler: Karras sigmas and a second-order rectified-flow multistep update.

- Sigmas: `num_inference_steps + 1` values from `sigma_max` to `sigma_min` (80 -> 0.002, rho 7,
  35 steps in the release), in float64:
  sigma_i = (sigma_max^(1/rho) + i/N (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho.
- Preconditioning (sigma_data = 1): t = sigma / (sigma + 1); c_skip = 1 - t, c_out = -t,
  c_in = 1 - t, and the network's time input is t. The model predicts the flow velocity F, and
  x0 = c_skip x + c_out F, where the state x lives in EDM space (x = x0 + sigma eps).
- Update ("RectifiedFlowAB2", in float64, the result stored in float32): the first step is Euler
  in x0 form, x' = (s'/s) x + (1 - s'/s) x0; later steps, with h = ln(s/s'), the previous sigma
  s_prev and x0_prev, c = -ln(s_prev/s) / h, phi1 = (1 - e^-h) / h, phi2 = (phi1 - 1) / (-h),
  b2 = phi2 / c, b1 = phi1 - b2: x' = e^-h x + h (b1 x0 + b2 x0_prev).
- After the last step the model is evaluated once more at sigma_min; that x0 is the output.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor


class AnyViewAB2Scheduler(SchedulerMixin, ConfigMixin):
    """Karras sigmas and the AB2 rectified-flow update of the released AnyView sampler."""

    config_name = "scheduler_config.json"  # type: ignore[assignment]
    order = 1

    @register_to_config
    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0):
        self.sigmas: Tensor = torch.empty(0, dtype=torch.float64)
        self.num_inference_steps = 0

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None):
        """Set `sigmas` to the `num_inference_steps + 1` Karras sigmas (float64, on the CPU)."""
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be at least 1, got {num_inference_steps}")
        c: Any = self.config
        i = torch.arange(num_inference_steps + 1, dtype=torch.float64)
        lo, hi = c.sigma_min ** (1 / c.rho), c.sigma_max ** (1 / c.rho)
        self.sigmas = (hi + i / num_inference_steps * (lo - hi)) ** c.rho
        self.num_inference_steps = num_inference_steps

    @staticmethod
    def preconditioning(sigma: float) -> tuple[float, float, float, float]:
        """(c_skip, c_out, c_in, t) for a noise level, in float32 as the release computes them."""
        s = torch.tensor(sigma, dtype=torch.float32)
        t = s / (s + 1)
        return float(1 - t), float(-t), float(1 - t), float(t)

    def step(self, x0: Tensor, i: int, sample: Tensor, x0_prev: Tensor | None = None) -> Tensor:
        """The state at `sigmas[i + 1]` from the state `sample` and the prediction `x0` at
        `sigmas[i]` (and `x0_prev` at `sigmas[i - 1]`, None on the first step)."""
        # Written as the release computes it (in log-sigma "time" lam = -ln sigma), so that the
        # float64 rounding is the same.
        s, s_next = float(self.sigmas[i]), float(self.sigmas[i + 1])
        x, d = sample.double(), x0.double()
        if x0_prev is None:
            out = (s - s_next) / s * d + s_next / s * x
        else:
            lam, lam_next = -math.log(s), -math.log(s_next)
            lam_prev = -math.log(float(self.sigmas[i - 1]))
            h = lam_next - lam
            c = (lam_prev - lam) / h
            phi1 = math.expm1(-h) / -h
            phi2 = (phi1 - 1.0) / -h
            b1, b2 = phi1 - 1.0 / c * phi2, 1.0 / c * phi2
            out = math.exp(-h) * x + h * (b1 * d + b2 * x0_prev.double())
        return out.to(sample.dtype)
