"""The pixel-space data fit shared by Spin and DCDP: gradients through the operator A only.

    argmin_x  data_weight·‖A(x) − y‖² + proximal_weight·‖x − start‖²,  iterated from x = start.

It runs outside inference mode on copies of every tensor it touches, since ComfyUI executes nodes
under torch.inference_mode, whose tensors cannot enter an autograd graph (comfyui.md §4.6).
"""
from typing import Callable, Optional

import torch


def fit_to_measurement(start: torch.Tensor, y: torch.Tensor, operator, steps: int,
                       make_optimiser: Callable[[list], torch.optim.Optimizer], data_weight: float,
                       proximal_weight: float = 0.0,
                       check_interrupt: Optional[Callable[[], None]] = None) -> torch.Tensor:
    with torch.inference_mode(False), torch.enable_grad():
        operator = operator.autograd_ready()
        anchor, target = start.detach().clone().float(), y.detach().clone().float()
        x = anchor.clone().requires_grad_(True)
        optimiser = make_optimiser([x])
        for _ in range(steps):
            if check_interrupt is not None:
                check_interrupt()
            optimiser.zero_grad()
            loss = data_weight * (operator.forward(x) - target).square().sum()
            if proximal_weight > 0:
                loss = loss + proximal_weight * (x - anchor).square().sum()
            loss.backward()
            optimiser.step()
        return x.detach()
