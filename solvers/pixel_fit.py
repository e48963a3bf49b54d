"""The pixel-space data fit shared by Spin and DCDP: gradients through the operator A only.

    argmin_x  data_weight·‖A(x) − y‖² + proximal_weight·‖x − start‖²,  iterated from x = start,

for up to `steps` optimiser steps, stopping early once every batch item's gradient is below
tolerance × its gradient at the start (the relative residual of the optimality condition, the
quantity the exact linear solve reports too).

It runs outside inference mode on copies of every tensor it touches, since ComfyUI executes nodes
under torch.inference_mode, whose tensors cannot enter an autograd graph (comfyui.md §4.6).
"""
from typing import Callable, Optional

import torch

from .linear_gaussian import SolveStats


def uses_exact_solve(operator, solver: str, knob: str) -> bool:
    """Whether a fit goes to the exact linear solve: solver "cg" (linear operators only, else a
    ValueError naming the knob) or "auto" on a linear operator; any other choice is a gradient fit."""
    if solver == "cg" and not operator.linear:
        raise ValueError(f"{knob} 'cg' needs a linear operator; {operator.describe()} is not (use auto, or a "
                         "gradient solver)")
    return solver == "cg" or (solver == "auto" and operator.linear)


def uses_projection(operator, solver: str) -> bool:
    """Whether a fit is the operator's own closed-form projection (solver "auto" on an operator that has one,
    such as JPEG's move into the measured quantisation cells): exact consistency where gradient steps through
    a rounding stall at the cell borders."""
    return solver == "auto" and operator.projects


def fit_to_measurement(start: torch.Tensor, y: torch.Tensor, operator, steps: int,
                       make_optimiser: Callable[[list], torch.optim.Optimizer], data_weight: float,
                       proximal_weight: float = 0.0,
                       check_interrupt: Optional[Callable[[], None]] = None, *,
                       tolerance: float = 0.0, stats: Optional[SolveStats] = None) -> torch.Tensor:
    with torch.inference_mode(False), torch.enable_grad():
        operator = operator.autograd_ready()
        anchor, target = start.detach().clone().float(), y.detach().clone().float()
        x = anchor.clone().requires_grad_(True)
        optimiser = make_optimiser([x])

        def gradient():
            loss = data_weight * (operator.forward(x) - target).square().sum()
            if proximal_weight > 0:
                loss = loss + proximal_weight * (x - anchor).square().sum()
            return torch.autograd.grad(loss, x)[0]

        initial_norm, relative, taken = None, 1.0, 0
        while True:
            grad = gradient()
            norm = grad.flatten(1).norm(dim=1)
            initial_norm = norm if initial_norm is None else initial_norm
            relative = float(torch.where(initial_norm > 0, norm / initial_norm.clamp_min(1e-30),
                                         torch.zeros_like(norm)).max())
            if taken == steps or relative <= tolerance:
                break
            if check_interrupt is not None:
                check_interrupt()
            x.grad = grad
            optimiser.step()
            taken += 1
        if stats is not None:
            stats.add(taken, relative)
        return x.detach()
