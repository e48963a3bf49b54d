"""Linear-Gaussian solves for the exact posterior steps (docs/ding_restore.md §1).

The systems are (τ² I + v·A Aᵀ) w = r in measurement space (the Kalman / Woodbury form of the
product N(μ, v I)·N(y; A x, τ² I)): symmetric positive definite, finite for τ → 0 when A has full
row rank, and as small as the measurement. Solved in closed form where A Aᵀ is diagonal (identity,
masks, box down-sampling), else by matrix-free conjugate gradients with A and Aᵀ only.
"""
import functools
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch


@dataclass
class SolveStats:
    """What the linear solves of a run cost and how far they got."""
    solves: int = 0
    iterations: int = 0                 # CG iterations over all solves (0 for closed forms)
    worst_residual: float = 0.0         # largest final relative residual ‖r − S w‖/‖r‖ of any solve
    residuals: list = field(default_factory=list)
    levels: list = field(default_factory=list)  # the noise level σ (in x0 units) of each solve, where known
    level: Optional[float] = None       # the caller's noise level for the solves it makes next

    def add(self, iterations: int, relative_residual: float):
        self.solves += 1
        self.iterations += iterations
        self.worst_residual = max(self.worst_residual, relative_residual)
        self.residuals.append(relative_residual)
        self.levels.append(self.level)

    def worst_residual_below(self, level: float) -> Optional[float]:
        """The worst residual of the solves made below noise level σ = `level`, if any were."""
        below = [r for r, at in zip(self.residuals, self.levels) if at is not None and at < level]
        return max(below) if below else None

    def describe(self, iteration_name: str = "CG iterations") -> str:
        if self.iterations == 0:
            return f"{self.solves} closed-form solves (worst relative residual {self.worst_residual:.1e})"
        text = f"{self.solves} solves, {self.iterations} {iteration_name}, worst relative residual {self.worst_residual:.1e}"
        # above σ = 1 the noise outweighs the image and every later step conditions on y again: solving
        # those steps 10× further changed no measured result (docs/benchmarks.md), so say where the worst is
        low = self.worst_residual_below(1.0)
        if low is not None and low < self.worst_residual:
            text += f" (at σ >= 1; {low:.1e} below)"
        return text


def _batch_dot(a, b):
    return (a * b).flatten(1).sum(1)


def _per_item(values, like):
    return values.view(-1, *([1] * (like.ndim - 1)))


def conjugate_gradient(apply: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor, *,
                       precondition: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                       tolerance: float = 1e-4, max_iterations: int = 50,
                       check_interrupt: Optional[Callable[[], None]] = None):
    """Solve S w = rhs for SPD S (given as w ↦ S w), independently per batch item, from w = 0,
    optionally preconditioned (w ↦ P⁻¹ w, SPD).

    Stops when every item's residual is below tolerance·‖rhs‖. Returns (w, iterations, the largest
    relative residual), the residual being the recursive one CG carries.
    """
    precondition = precondition or (lambda r: r)
    w = torch.zeros_like(rhs)
    residual = rhs.clone()
    preconditioned = precondition(residual)
    direction = preconditioned.clone()
    energy = _batch_dot(residual, preconditioned)
    target = (tolerance ** 2) * _batch_dot(rhs, rhs)
    rhs_energy = _batch_dot(rhs, rhs).clamp_min(1e-300)
    iterations = 0

    def unconverged():
        return _batch_dot(residual, residual) > target

    while iterations < max_iterations and bool(unconverged().any()):
        if check_interrupt is not None:
            check_interrupt()
        active = unconverged()
        image = apply(direction)
        curvature = _batch_dot(direction, image)
        alpha = torch.where(active, energy / curvature.clamp_min(1e-300), torch.zeros_like(energy))
        w = w + _per_item(alpha, w) * direction
        residual = residual - _per_item(alpha, w) * image
        preconditioned = precondition(residual)
        new_energy = _batch_dot(residual, preconditioned)
        beta = torch.where(active, new_energy / energy.clamp_min(1e-300), torch.zeros_like(energy))
        direction = preconditioned + _per_item(beta, w) * direction
        energy = torch.where(active, new_energy, energy)
        iterations += 1
    return w, iterations, float((_batch_dot(residual, residual) / rhs_energy).sqrt().max())


@functools.lru_cache(maxsize=16)
def _circulant_eigenvalues(operator, height: int, width: int, device, normal: bool) -> torch.Tensor:
    """The eigenvalues of G (see circulant_preconditioner) on a height × width grid, from its impulse
    response. A run solves on one grid with one operator at every step, so each is computed once."""
    impulse = torch.zeros(1, 1, height, width, dtype=torch.float64, device=device)
    impulse[..., height // 2, width // 2] = 1.0
    response = (operator.adjoint(operator.forward(impulse)) if normal
                else operator.forward(operator.adjoint(impulse)))[0, 0]
    response = torch.roll(response, (-(height // 2), -(width // 2)), dims=(0, 1))
    return torch.fft.rfft2(response).real.clamp_min(0.0)


def circulant_preconditioner(operator, noise_var: float, prior_var: float, like: torch.Tensor, normal=False):
    """(τ² I + v·G)⁻¹ with G = A Aᵀ (or AᵀA for the normal equations, `normal`) taken as circular,
    applied by FFT, for operators whose G is shift-invariant: A Aᵀ of blurs and of bicubic or box
    down-sampling on the low-resolution grid; AᵀA of size-preserving ones (blurs) only, since AᵀA of a
    down-sampling repeats with the factor. G's impulse response at the grid's centre, rolled to the
    origin, gives its eigenvalues: exact for a periodic image, close for the real one (the border differs)."""
    if not getattr(operator, "shift_invariant", False):
        return None
    if normal and tuple(operator.measurement_shape(like.shape)) != tuple(like.shape):
        return None
    height, width = like.shape[-2:]
    eigenvalues = _circulant_eigenvalues(operator, height, width, like.device, normal)
    inverse = (1.0 / (noise_var + prior_var * eigenvalues)).to(like.dtype)

    def apply(r):
        return torch.fft.irfft2(torch.fft.rfft2(r) * inverse, s=(height, width))
    return apply


def solve_measurement_system(operator, noise_var: float, prior_var, rhs: torch.Tensor, stats: SolveStats, *,
                             tolerance: float = 1e-4, max_iterations: int = 50,
                             check_interrupt: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """w = (τ² I + v·A Aᵀ)⁻¹ rhs for a pixel-space operator A (v a scalar prior variance)."""
    diagonal = operator.gram_diagonal(rhs)
    if diagonal is not None:
        denominator = noise_var + prior_var * diagonal
        stats.add(0, 0.0)
        return torch.where(denominator > 0, rhs / denominator.clamp_min(1e-300), torch.zeros_like(rhs))

    def system(w):
        return noise_var * w + prior_var * operator.forward(operator.adjoint(w))

    # float64: these systems reach condition numbers of 1 + v‖A‖²/τ² ~ 10⁵ at high noise, where float32
    # CG stalls; A and Aᵀ on pixels are cheap next to the network
    rhs64 = rhs.double()
    w, iterations, residual = conjugate_gradient(
        system, rhs64, precondition=circulant_preconditioner(operator, noise_var, prior_var, rhs64),
        tolerance=tolerance, max_iterations=max_iterations, check_interrupt=check_interrupt)
    stats.add(iterations, residual)
    return w.to(rhs.dtype)


def dense_matrix(apply: Callable[[torch.Tensor], torch.Tensor], input_shape) -> torch.Tensor:
    """The matrix [m, d] of a linear map on tensors of `input_shape` (one item), by applying it to the
    standard basis: for tests and small exact references only."""
    dim = 1
    for size in input_shape:
        dim *= size
    if dim > 4096:
        raise ValueError(f"dense_matrix: {dim} unknowns is too many for an explicit matrix")
    basis = torch.eye(dim, dtype=torch.float64).reshape(dim, *input_shape)
    return torch.stack([apply(basis[i:i + 1]).reshape(-1) for i in range(dim)], 1)


def proximal_solve(operator, start: torch.Tensor, y: torch.Tensor, proximal_weight: float, stats: SolveStats, *,
                   tolerance: float = 1e-4, max_iterations: int = 50,
                   check_interrupt: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """argmin_x ‖A x − y‖² + λ‖x − start‖² for a linear pixel-space operator A.

    Closed form where A Aᵀ is diagonal, through the measurement-space (Woodbury) form
    x = start + Aᵀ (λ I + A Aᵀ)⁻¹ (y − A start); otherwise CG on the normal equations for the step
    (AᵀA + λ I)(x − start) = Aᵀ(y − A start), from x = start, whose residual is the objective's
    gradient: CG stops once ‖∇f(x)‖ ≤ tolerance·‖∇f(start)‖ (at λ = 0 it reaches the solution nearest
    to start). Records the iterations and that relative residual, recomputed, in `stats`."""
    if not operator.linear:
        raise ValueError(f"an exact proximal solve needs a linear operator; {operator.describe()} is not")
    start, y = start.float(), y.float()
    misfit = y - operator.forward(start)
    if operator.gram_diagonal(misfit) is not None:
        w = solve_measurement_system(operator, proximal_weight, 1.0, misfit, SolveStats())
        solution, iterations = start + operator.adjoint(w), 0
    else:
        def normal_system(step):
            return operator.adjoint(operator.forward(step)) + proximal_weight * step

        rhs = operator.adjoint(misfit).double()  # float64 for the same reason as solve_measurement_system
        # no preconditioner at λ = 0: 1/|K̂|² would blow up the frequencies a blur removes, where plain CG
        # stopped at the tolerance leaves them near start
        preconditioner = (circulant_preconditioner(operator, proximal_weight, 1.0, rhs, normal=True)
                          if proximal_weight > 0 else None)
        step, iterations, _ = conjugate_gradient(
            normal_system, rhs, precondition=preconditioner,
            tolerance=tolerance, max_iterations=max_iterations, check_interrupt=check_interrupt)
        solution = start + step.float()
    stats.add(iterations, relative_gradient(operator, solution, start, y, proximal_weight))
    return solution


def relative_gradient(operator, x: torch.Tensor, start: torch.Tensor, y: torch.Tensor, proximal_weight: float) -> float:
    """max over the batch of ‖∇f(x)‖ / ‖∇f(start)‖ for f = ‖A x − y‖² + λ‖x − start‖² (A linear):
    0 at the minimiser, 1 where nothing was done (0 when start already solves it)."""
    x, start, y = x.double(), start.double(), y.double()

    def gradient(v):
        return operator.adjoint(operator.forward(v) - y) + proximal_weight * (v - start)
    initial = gradient(start).flatten(1).norm(dim=1)
    final = gradient(x).flatten(1).norm(dim=1)
    return float(torch.where(initial > 0, final / initial.clamp_min(1e-30), torch.zeros_like(final)).max())
