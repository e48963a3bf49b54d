"""DInG Restore's cheaper settings against its default, side by side on the exact restoration oracles.

Each row is one oracle problem (scripts/oracle_problems.RestoreOracle: a Gaussian-mixture prior over
latents decoded to RGB 8x8 by the pass-through ("identity") or the linear SD-shaped autoencoder,
σ_y = 0.05); each column one setting of the DInG Restore SAMPLER, given as solver:exact_every:variant
(exact_every > 1 conditions only every n-th step, the others being plain prior steps); the cell is the
sliced W2 distance of 200 draws to the exact posterior (lower is better; the floor is two exact
draws' distance). STEPS (20) and ITERS (the CG budget, 30) come from the environment.

Run: .venv/bin/python benchmarks/bench_restore_variants.py \\
       identity:gaussian_blur:eps,linear:sr_x2:flow  pixel:1:ding,pixel:1:delayed,pixel:2:ding
"""
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "scripts"))
sys.path.insert(0, str(ROOT))
import comfy_harness  # noqa: E402
from oracle_problems import RESTORE_NOISE, RestoreOracle, restore_operators  # noqa: E402

N_SAMPLES = 200


def main():
    engine = comfy_harness.boot(with_test_nodes=False)
    pack = comfy_harness.pack_modules(engine)
    steps, iterations = int(os.environ.get("STEPS", "20")), int(os.environ.get("ITERS", "30"))
    base = dict(measurement_noise=RESTORE_NOISE / 2, eta_schedule="fm_square", eta_scale=1.0,
                solver_iterations=iterations, solver_tolerance=1e-4)
    cases = [case.split(":") for case in sys.argv[1].split(",")]
    settings = [setting.split(":") for setting in sys.argv[2].split(",")]
    print(f"{steps} steps, CG budget {iterations}; sliced W2 to the exact posterior")
    for autoencoder, task, prediction in cases:
        oracle = RestoreOracle(engine, pack, restore_operators(pack)[task], prediction, autoencoder, N_SAMPLES, steps)
        cells = []
        for solver, exact_every, variant in settings:
            sampler = engine.nodes["InverseDInGRestoreSampler"]().get_sampler(
                oracle.vae, oracle.measurement, oracle.operator,
                **dict(base, latent_solver=solver, variant=variant, exact_every=int(exact_every)))[0]
            distance = oracle.distance(oracle.sample(sampler), torch.Generator().manual_seed(0))
            cells.append(f"{solver}/{exact_every}/{variant} {distance:.4f}")
        print(f"{autoencoder} {task} {prediction} (floor {oracle.floor:.3f}): " + ", ".join(cells), flush=True)


if __name__ == "__main__":
    main()
