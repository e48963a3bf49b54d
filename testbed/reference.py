"""Reference posterior samples for restoration through the testbed autoencoder.

The prior is testbed/latent_prior.py's mixture p(z) over latents z [4, s/8, s/8] of s×s images; the
measurement y = A(Dec(z)) + σ_y·n, with A one of the pack's operators acting on decoded pixels in
[−1, 1] (not clamped). The log-posterior log p(z) + log N(y; A(Dec z), σ_y² I) has no closed form through
the nonlinear decoder; this samples it by preconditioned MALA (Metropolis-adjusted Langevin), many chains
in one batch, the gradient of the likelihood by autograd through the decoder and A.

Warm-up (see run_mala): chains start from prior draws (over-dispersed), the likelihood is tempered in, the
step size is tuned toward 0.574 acceptance and the preconditioner (the proposal's covariance) re-estimated
from the chains' pooled covariance; both are then frozen and the chains keep every `thin`-th state. Convergence: split-R̂ per latent coordinate
over the chains of one run, and the sliced W2 (demo.metrics) between the decoded samples of two runs
with independent seeds, beside the same distance between two halves of one run's chains.

    .venv/bin/python -m testbed.reference            the built-in check: a few problems, two runs each
    .venv/bin/python -m testbed.reference --size 32 --chains 48 --steps 2000
    .venv/bin/python -m testbed.reference --refit-prior    refit the prior first (after retraining the VAE)
"""
import argparse
import importlib
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
TARGET_ACCEPTANCE = 0.574


@dataclass
class LatentProblem:
    """y = A(Dec z) + noise_std·n over latents of size×size images."""
    operator: object          # solvers.operators.Operator on [B, 3, size, size] in [−1, 1]
    measurement: torch.Tensor  # y [1, ...]
    noise_std: float
    size: int
    truth: torch.Tensor = None  # the pixels [1, 3, size, size] in [−1, 1] y was simulated from, if known


@dataclass
class ReferenceRun:
    samples: torch.Tensor     # latents [n_kept, chains, d] (float64)
    step_size: float
    acceptance: float          # MALA, over the sampling phase
    jump_acceptance: float     # the independence (mode-jumping) moves, over the sampling phase
    seconds: float

    def flat(self) -> torch.Tensor:
        return self.samples.reshape(-1, self.samples.shape[-1])


def _pack_module(name):
    return importlib.import_module(f"{__package__.rsplit('.', 1)[0]}.{name}")


def make_problem(operator, truth_latent: torch.Tensor, noise_std: float, generator: torch.Generator) -> LatentProblem:
    """Simulate y = A(Dec z*) + σ_y·n from a truth latent z* [1, 4, s/8, s/8]: the truth lies in the decoder's
    range, so a posterior sample's data residual ‖A·Dec(z) − y‖ / (σ_y·√m) is ≈ 1."""
    with torch.no_grad():
        truth = _pack_module("testbed.vae").decode_raw(_pack_module("testbed.latent_prior").testbed_vae(), truth_latent)
    y = operator.simulate(truth, noise_std, generator)
    mask = getattr(operator, "observed_mask", None)
    if mask is not None:   # hidden pixels measure nothing: no noise there either
        y = y * (mask > 0).to(y.dtype)
    return LatentProblem(operator, y, float(noise_std), truth.shape[-1], truth)


class Posterior:
    """log π(z) = log p(z) − ‖y − A(Dec z)‖² / (2σ_y²) and its gradient, batched over chains [N, d]."""

    def __init__(self, problem: LatentProblem):
        latent_prior = _pack_module("testbed.latent_prior")
        self.prior = latent_prior.latent_mixture(problem.size)
        self.log_prior = latent_prior.log_density
        self.vae = latent_prior.testbed_vae()
        self.shape = latent_prior.latent_shape(problem.size)
        self.operator = problem.operator.autograd_ready()
        self.y = problem.measurement.detach().clone().to(torch.float32)
        self.noise_var = problem.noise_std ** 2
        self.decode_raw = _pack_module("testbed.vae").decode_raw

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.decode_raw(self.vae, z.to(torch.float32).reshape(-1, *self.shape))

    def parts(self, z: torch.Tensor):
        """(log p(z), ∇ log p, misfit ‖y − A(Dec z)‖²/(2σ_y²), ∇ misfit) for z [N, d], float64."""
        log_p, grad_p = self.log_prior(self.prior, z)
        with torch.inference_mode(False), torch.enable_grad():
            latent = z.detach().to(torch.float32).reshape(-1, *self.shape).clone().requires_grad_(True)
            residual = self.operator.forward(self.decode_raw(self.vae, latent)) - self.y
            misfit = residual.reshape(len(z), -1).square().sum(1) / (2.0 * self.noise_var)
            (grad_l,) = torch.autograd.grad(misfit.sum(), latent)
        return log_p, grad_p, misfit.detach().to(torch.float64), grad_l.reshape(len(z), -1).to(torch.float64)

    def __call__(self, z: torch.Tensor, tempering: float = 1.0):
        """log π(z) and its gradient, the likelihood raised to the power `tempering`."""
        log_p, grad_p, misfit, grad_l = self.parts(z)
        return log_p - tempering * misfit, grad_p - tempering * grad_l


def run_mala(problem: LatentProblem, chains: int, steps: int, seed: int, warmup: int = None, thin: int = 5,
             jump_every: int = 4, log=None) -> ReferenceRun:
    """`chains` MALA chains of `steps` iterations; the first `warmup` (default half) tune and are dropped.
    Every `jump_every`-th sampling iteration adds an independence Metropolis-Hastings move whose proposal q
    is a Gaussian mixture fitted to the end of the warm-up (demo.gaussian_mixture's fit, covariances
    doubled): exact, since it is accepted with π(z')q(z) / (π(z)q(z')), and it lets a chain jump between
    separated posterior modes (an inpainted hole with two plausible contents), which MALA alone cannot.

    Warm-up: the chains start from prior draws; over its first half the likelihood is tempered in, its
    weight rising geometrically from 1e-3 to 1 (so chains reach the posterior's mass from the prior without
    sticking on the way); the step size follows a Robbins-Monro rule toward 0.574 acceptance throughout; the
    preconditioner is the prior's average covariance at first, then the chains' pooled covariance,
    re-estimated at 1/2, 2/3 and 5/6 of the warm-up."""
    start = time.time()
    target = Posterior(problem)
    g = torch.Generator().manual_seed(seed)
    warmup = steps // 2 if warmup is None else warmup
    anneal = max(warmup // 2, 1)
    z = target.prior.sample(chains, g)
    covariance = target.prior.covariances().mean(0)
    chol = torch.linalg.cholesky(covariance)
    log_step = math.log(0.5)
    kept, accepted, proposed, history, jumps, jumps_accepted = [], 0, 0, [], 0, 0
    jump_proposal, tail = None, []
    adapt_at = {anneal, 2 * warmup // 3, 5 * warmup // 6}
    tempering = 1e-3
    log_pi, grad = target(z, tempering)
    for step in range(steps):
        if step < anneal:
            new_tempering = 1e-3 ** (1.0 - (step + 1) / anneal)
        else:
            new_tempering = 1.0
        if new_tempering != tempering:
            tempering = new_tempering
            log_pi, grad = target(z, tempering)
        eps = math.exp(log_step)
        noise = torch.randn(z.shape, generator=g, dtype=torch.float64)
        drift = 0.5 * eps * eps * grad @ covariance
        proposal = z + drift + eps * noise @ chol.T
        log_pi_new, grad_new = target(proposal, tempering)
        drift_back = 0.5 * eps * eps * grad_new @ covariance
        forward = _gaussian_log(proposal - z - drift, chol, eps)
        backward = _gaussian_log(z - proposal - drift_back, chol, eps)
        log_alpha = torch.nan_to_num(log_pi_new - log_pi + backward - forward, nan=-math.inf).clamp(max=0.0)
        accept = torch.rand(chains, generator=g, dtype=torch.float64).log() < log_alpha
        z = torch.where(accept[:, None], proposal, z)
        log_pi = torch.where(accept, log_pi_new, log_pi)
        grad = torch.where(accept[:, None], grad_new, grad)
        rate = float(log_alpha.exp().mean())
        if step < warmup:
            log_step += 2.0 * (rate - TARGET_ACCEPTANCE) / math.sqrt(step + 10)
            if step >= anneal // 2:
                history.append(z.clone())
            if step >= 5 * warmup // 6:
                tail.append(z.clone())
            if step + 1 == warmup:
                jump_proposal = _fit_jump_proposal(torch.cat(tail), g)
            if step + 1 in adapt_at:   # the chains' pooled covariance since the last estimate
                recent = torch.cat(history)
                covariance = torch.cov(recent.T) + 1e-8 * torch.eye(z.shape[1], dtype=torch.float64)
                chol = torch.linalg.cholesky(covariance)
                history = []
        else:
            accepted += int(accept.sum())
            proposed += chains
            if jump_proposal is not None and (step - warmup) % jump_every == 0:
                z, log_pi, grad, moved = _independence_move(target, jump_proposal, z, log_pi, grad, g)
                jumps += chains
                jumps_accepted += moved
            if (step - warmup) % thin == 0:
                kept.append(z.clone())
        if log and (step + 1) % max(steps // 4, 1) == 0:
            log(f"    step {step + 1}/{steps}: acceptance {rate:.2f}, step size {eps:.3g}, "
                f"{time.time() - start:.0f} s")
    return ReferenceRun(torch.stack(kept), math.exp(log_step), accepted / max(proposed, 1),
                        jumps_accepted / max(jumps, 1), time.time() - start)


def _fit_jump_proposal(states: torch.Tensor, generator: torch.Generator, components: int = 4):
    """A Gaussian mixture over the warm-up's last states [n, d], each covariance doubled."""
    mixtures = _pack_module("demo.gaussian_mixture")
    fitted = mixtures.fit_lowrank_mixture(states, components, states.shape[1] - 1, generator, min_var=1e-8)
    return mixtures.GaussianMixture(fitted.weights, fitted.means, fitted.basis, 2.0 * fitted.basis_var,
                                    2.0 * fitted.iso_var)


def _independence_move(target, proposal_law, z, log_pi, grad, generator):
    log_q = lambda x: torch.logsumexp(proposal_law._noisy_marginals(x, 0.0)[0], dim=1)
    proposal = proposal_law.sample(len(z), generator)
    log_pi_new, grad_new = target(proposal)
    log_alpha = torch.nan_to_num(log_pi_new - log_pi + log_q(z) - log_q(proposal), nan=-math.inf).clamp(max=0.0)
    accept = torch.rand(len(z), generator=generator, dtype=torch.float64).log() < log_alpha
    return (torch.where(accept[:, None], proposal, z), torch.where(accept, log_pi_new, log_pi),
            torch.where(accept[:, None], grad_new, grad), int(accept.sum()))


def _gaussian_log(delta, chol, eps):
    """log N(delta; 0, eps² L Lᵀ) up to a constant shared by both directions."""
    white = torch.linalg.solve_triangular(chol, delta.T, upper=False).T / eps
    return -0.5 * white.square().sum(1)


def split_rhat(samples: torch.Tensor) -> torch.Tensor:
    """Split-R̂ (Gelman et al.) per coordinate of samples [n, chains, d]: each chain split in halves."""
    n = samples.shape[0] // 2
    halves = torch.cat([samples[:n], samples[n:2 * n]], dim=1)          # [n, 2·chains, d]
    chain_means = halves.mean(0)
    within = halves.var(0, unbiased=True).mean(0)
    between = n * chain_means.var(0, unbiased=True)
    pooled = (n - 1) / n * within + between / n
    return (pooled / within).sqrt()


def measured_count(problem: LatentProblem) -> int:
    """m: the number of measured values (an inpainting's hidden pixels measure nothing)."""
    mask = getattr(problem.operator, "observed_mask", None)
    if mask is None:
        return problem.measurement[0].numel()
    return int((mask.expand(1, problem.measurement.shape[1], *mask.shape[-2:]) > 0).sum())


def data_residuals(problem: LatentProblem, pixels: torch.Tensor) -> torch.Tensor:
    """‖A·x − y‖ / (σ_y·√m) per decoded sample x [N, 3, s, s]: ≈ 1 for a posterior sample."""
    misfit = (problem.operator.forward(pixels) - problem.measurement).reshape(len(pixels), -1).norm(dim=1)
    return misfit / (problem.noise_std * math.sqrt(measured_count(problem)))


def psnr_against_truth(problem: LatentProblem, image: torch.Tensor) -> float:
    """PSNR in dB of one image [3, s, s] in [−1, 1] (e.g. the samples' mean) against the truth, in [0, 1]."""
    mse = (((image + 1) / 2).clamp(0, 1) - ((problem.truth[0] + 1) / 2).clamp(0, 1)).square().mean()
    return float(-10 * torch.log10(mse))


def assess(problem: LatentProblem, first: ReferenceRun, second: ReferenceRun, seed: int = 0) -> dict:
    """Convergence and fit of two independent runs on one problem."""
    sliced = _pack_module("demo.metrics").sliced_wasserstein
    target = Posterior(problem)
    pixels_a, pixels_b = target.decode(first.flat()), target.decode(second.flat())
    g = lambda: torch.Generator().manual_seed(seed)
    chains = first.samples.shape[1]
    half_a = target.decode(first.samples[:, : chains // 2].reshape(-1, first.samples.shape[-1]))
    half_b = target.decode(first.samples[:, chains // 2:].reshape(-1, first.samples.shape[-1]))
    both = torch.cat([first.samples, second.samples], dim=1)
    rhat = split_rhat(both)
    mean_pixels = 0.5 * (pixels_a.mean(0) + pixels_b.mean(0))
    result = {
        "rhat_max": float(rhat.max()), "rhat_max_per_run": [float(split_rhat(r.samples).max()) for r in (first, second)],
        "sw2_runs": float(sliced(pixels_a, pixels_b, g())),
        "sw2_half_chains": float(sliced(half_a, half_b, g())),
        "acceptance": [first.acceptance, second.acceptance],
        "jump_acceptance": [first.jump_acceptance, second.jump_acceptance], "step_size": [first.step_size, second.step_size],
        "seconds": [first.seconds, second.seconds], "samples": [len(first.flat()), len(second.flat())],
        "residual": float(data_residuals(problem, pixels_a).mean()),
        "posterior_spread": float(pixels_a.std(0).square().mean().sqrt()),
    }
    if problem.truth is not None:
        result["psnr_mean"] = psnr_against_truth(problem, mean_pixels)
    return result


# The testbed's problems by name: (operator on size×size images, from the pack's operators module; σ_y)
TASKS = {
    "gaussian_blur": (lambda ops, size: ops.gaussian_blur(5, 1.5), 0.05),
    "motion_blur": (lambda ops, size: ops.motion_blur(7, torch.Generator().manual_seed(3)), 0.05),
    "sr_x2": (lambda ops, size: ops.Downsample(2), 0.05),
    "sr_x4": (lambda ops, size: ops.Downsample(4), 0.1),
    "denoise": (lambda ops, size: ops.Identity(), 0.1),
    "inpaint": (lambda ops, size: ops.Inpainting(right_half_hidden(size)), 0.05),
}


def right_half_hidden(size: int) -> torch.Tensor:
    mask = torch.ones(1, 1, size, size)
    mask[..., size // 2:] = 0.0
    return mask


def task_operator(task: str, size: int):
    """(operator, σ_y) of one of TASKS."""
    factory, noise_std = TASKS[task]
    return factory(_pack_module("solvers.operators"), size), noise_std


def standard_problems(size: int, generator: torch.Generator):
    """A few measurement problems: (name, LatentProblem). Truths: the encoded (posterior-mode) latents of
    photo patches neither the autoencoder nor the prior saw."""
    latent_prior = _pack_module("testbed.latent_prior")
    truths = latent_prior.encode_patches(latent_prior.held_out_truths(size, 3, generator))
    names = {"gaussian_blur": "gaussian blur 5x5 std 1.5, sigma_y 0.05", "sr_x4": "x4 bicubic SR, sigma_y 0.1",
             "inpaint": "inpainting (right half hidden), sigma_y 0.05"}
    problems = []
    for i, (task, name) in enumerate(names.items()):
        operator, noise_std = task_operator(task, size)
        problems.append((name, make_problem(operator, truths[i:i + 1], noise_std, generator)))
    return problems


def run_check(size: int, chains: int, steps: int, log=print):
    generator = torch.Generator().manual_seed(size)
    for name, problem in standard_problems(size, generator):
        log(f"{name}, {size}x{size} pixels, latent {tuple(_pack_module('testbed.latent_prior').latent_shape(size))}:")
        first = run_mala(problem, chains, steps, seed=1, log=log)
        second = run_mala(problem, chains, steps, seed=2, log=log)
        r = assess(problem, first, second)
        log(f"  split-R-hat max {r['rhat_max']:.3f} (per run {r['rhat_max_per_run'][0]:.3f}, {r['rhat_max_per_run'][1]:.3f}); "
            f"sliced W2 run vs run {r['sw2_runs']:.4f}, half vs half of one run {r['sw2_half_chains']:.4f}, "
            f"posterior pixel std {r['posterior_spread']:.4f}")
        log(f"  acceptance {r['acceptance'][0]:.2f}/{r['acceptance'][1]:.2f}, {r['samples'][0]} samples per run, "
            f"jumps accepted {r['jump_acceptance'][0]:.2f}/{r['jump_acceptance'][1]:.2f}, "
            f"{r['seconds'][0]:.0f}+{r['seconds'][1]:.0f} s; data residual {r['residual']:.3f}; "
            f"posterior-mean PSNR {r.get('psnr_mean', float('nan')):.2f} dB")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=16, help="image side in pixels (16 or 32)")
    parser.add_argument("--chains", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--refit-prior", action="store_true",
                        help="refit the latent prior (after retraining the autoencoder), rewrite "
                             "testbed/latent_prior.safetensors, then run the check")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "scripts"))
    import comfy_harness
    engine = comfy_harness.boot(with_test_nodes=False)
    print(f"engine: {engine.name} ({engine.commit})", flush=True)
    pack_copy = importlib.import_module(f"{engine.pack.__name__}.testbed.reference")
    if args.refit_prior:
        importlib.import_module(f"{engine.pack.__name__}.testbed.latent_prior").write_mixtures()
    pack_copy.run_check(args.size, args.chains, args.steps, log=lambda line: print(line, flush=True))


if __name__ == "__main__":
    main()
