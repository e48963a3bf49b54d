"""Restorers through a trained, nonlinear decoder: the testbed (docs/testbed.md), against a long-run MCMC
reference of the exact posterior, all measured in this run.

Prior: testbed/latent_prior.py's Gaussian mixture over the testbed VAE's latents of 16×16 photo patches
(2×2×4 latents), as an exact ComfyUI MODEL (EPS). Measurement: y = A(Dec z*) + σ_y·n from the encoded
latent z* of a held-out patch (testbed/reference.standard_problems). Reference: preconditioned MALA on
log p(z) + log N(y; A(Dec z), σ_y²I), two independent runs (their sliced W2 against each other is the
floor). Each restorer runs through SamplerCustom with ComfyUI's VAE class at its node defaults, 20 steps,
N draws; scored in pixels by sliced W2 to the reference, PSNR of the mean against the truth, and the data
residual ‖A·Dec(x) − y‖ / (σ_y·√m), ≈ 1 for a posterior sample (mean and worst draw).

Run: .venv/bin/python benchmarks/bench_testbed.py [--chains 32 --steps 1000 --samples 200]
"""
import argparse
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "scripts"))
sys.path.insert(0, str(ROOT))
import comfy_harness  # noqa: E402
from bench_spin import Modules  # noqa: E402
from oracle_problems import node_defaults  # noqa: E402

SIZE, STEPS = 16, 20
RESTORERS = [("DInG Restore (pixel)", "InverseDInGRestoreSampler", {"latent_solver": "pixel"}),
             ("DInG Restore (linearized)", "InverseDInGRestoreSampler", {"latent_solver": "linearized"}),
             ("Spin", "InverseSpinSampler", {}), ("DCDP", "InverseDCDPSampler", {})]


def sampler(engine, node_id, vae, measurement, operator, noise_std, overrides):
    node = engine.nodes[node_id]
    options = {**node_defaults(node), **overrides}
    if "measurement_noise" in options:
        options["measurement_noise"] = noise_std / 2  # σ_y in 0..1 pixel units
    return node().get_sampler(vae=vae, measurement=measurement, operator=operator, **options)[0]


def score(pack, problem, pixels, reference_pixels, reference_floor):
    reference = pack.testbed__reference
    residual = (problem.operator.forward(pixels) - problem.measurement).reshape(len(pixels), -1).norm(dim=1)
    residual = residual / (problem.noise_std * math.sqrt(reference.measured_count(problem)))
    mean = ((pixels.mean(0) + 1) / 2).clamp(0, 1)
    psnr = -10 * torch.log10((mean - ((problem.truth[0] + 1) / 2).clamp(0, 1)).square().mean())
    w2 = float(pack.solvers__metrics.sliced_wasserstein(pixels.double(), reference_pixels.double(),
                                                        torch.Generator().manual_seed(0)))
    return f"W2 {w2:.4f} (floor {reference_floor:.4f}), PSNR {float(psnr):.2f} dB, " \
           f"residual {float(residual.mean()):.2f} (worst {float(residual.max()):.2f})"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chains", type=int, default=32)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    engine = comfy_harness.boot(with_test_nodes=False)
    pack = Modules(engine)
    reference, prior = pack.testbed__reference, pack.testbed__latent_prior
    vae = prior.testbed_vae()
    model = prior.prior_model("eps", SIZE)
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", STEPS, 1.0)[0]
    empty = {"samples": torch.zeros(args.samples, *prior.latent_shape(SIZE))}
    no_prompt = [[torch.zeros(1, 1, 1), {}]]
    for name, problem in reference.standard_problems(SIZE, torch.Generator().manual_seed(SIZE)):
        first = reference.run_mala(problem, args.chains, args.steps, seed=1)
        second = reference.run_mala(problem, args.chains, args.steps, seed=2)
        target = reference.Posterior(problem)
        ref_a, ref_b = target.decode(first.flat()), target.decode(second.flat())
        floor = float(pack.solvers__metrics.sliced_wasserstein(ref_a.double(), ref_b.double(),
                                                               torch.Generator().manual_seed(0)))
        rhat = float(reference.split_rhat(torch.cat([first.samples, second.samples], 1)).max())
        print(f"{name}: reference {len(ref_a)} + {len(ref_b)} samples, split-R-hat {rhat:.3f}", flush=True)
        print(f"  exact (reference run 2): {score(pack, problem, ref_b[:args.samples], ref_a, floor)}", flush=True)
        measurement = pack.nodes__vae_bridge.pixels_to_image(problem.measurement)
        for label, node_id, overrides in RESTORERS:
            restorer = sampler(engine, node_id, vae, measurement, problem.operator, problem.noise_std, overrides)
            latents = engine.nodes["SamplerCustom"]().sample(model, True, 1, 1.0, no_prompt, no_prompt, restorer,
                                                             sigmas, empty)[0]["samples"]
            pixels = target.decode(latents.reshape(len(latents), -1))
            print(f"  {label}: {score(pack, problem, pixels, ref_a, floor)}", flush=True)


if __name__ == "__main__":
    main()
