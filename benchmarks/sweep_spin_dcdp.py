"""How Spin's and DCDP's defaults were chosen: a sweep on the exact oracle, several problems and seeds.

Problems (scripts/oracle_problems.RestoreOracle, identity autoencoder: pixels = latents, RGB 8x8):
inpainting (right half hidden), Gaussian blur (5x5, std 1.5) and x2 bicubic super-resolution, each
for EPS and flow models and three prior/measurement seeds (11, 12, 13): 18 problems, σ_y = 0.05,
30-step "normal" schedule, 200 samples each. Score: sliced W2 to exact posterior samples, averaged
over the 18 problems (the table also gives the worst problem's ratio to the best setting found).

The sweep is coordinate-wise: starting from the former defaults, each knob in turn is set to the value
of its grid with the lowest mean score (the others held), pass after pass until a pass changes nothing; for knobs that cost network
calls or fits (COSTLY, grids in ascending cost) the cheapest value within 2% of the best is taken. The solvers run directly on
the oracle's exact denoiser (the same code the nodes call; the nodes add only ComfyUI plumbing).
Then, side by side at the chosen defaults: the pack's fit (exact solve for these linear operators),
the same method with dense-matrix exact fits (the tests' reference) and with the old inexact
default fit (Spin: 50 Adam steps, lr 0.05; DCDP: 100 momentum steps), and DInG's dense exact step on
the same schedule (2 network calls per step).

Run: .venv/bin/python benchmarks/sweep_spin_dcdp.py [--spin | --dcdp] [--quick] [--no-sweep]
     (--no-sweep: only the side-by-side table, at the nodes' current defaults)
"""
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "scripts"))
sys.path.insert(0, str(ROOT))
import comfy_harness  # noqa: E402
from oracle_problems import (RESTORE_NOISE, RestoreOracle, dense_proximal_solve, node_defaults,  # noqa: E402
                             restore_operators)

TASKS = ("inpaint", "gaussian_blur", "sr_x2")
PREDICTIONS = ("eps", "flow")
SEEDS = (11, 12, 13)
N_SAMPLES = 200
STEPS = 30

SPIN_GRID = {
    "warm_start_strength": (0.3, 0.45, 0.6, 0.75, 0.9),
    "warm_start_iterations": (0, 2, 4, 8),
    "guided_steps": (0, 2, 4, 8, 12, 16),
    "guidance_end": (0.3, 0.6, 0.8, 0.95),
    "proximity": (0.125, 0.25, 0.5, 1.0, 2.0),
    "renoise": ("stochastic", "deterministic"),
}
# the former node defaults
SPIN_START = dict(warm_start_strength=0.6, warm_start_iterations=4, guided_steps=4, guidance_end=0.6, proximity=1.0,
                  renoise="stochastic")
DCDP_GRID = {
    "start_strength": (0.1, 0.2, 0.3, 0.5, 0.7, 0.9),
    "end_strength": (0.0, 0.1, 0.2),
    "proximal_weight": (0.0, 0.03, 0.1, 0.3, 1.0, 3.0),
    "outer_iterations": (5, 10, 20),
}
FORMER_DCDP = dict(start_strength=0.7, end_strength=0.0, proximal_weight=0.0, outer_iterations=10)  # node defaults
COSTLY = ("warm_start_iterations", "guided_steps", "outer_iterations")
DCDP_START = dict(start_strength=0.7, end_strength=0.0, proximal_weight=1.0, outer_iterations=10)  # μ for σ_y > 0


class Problem:
    """One oracle problem with the solvers' inputs ready: exact denoiser, schedule, batch of y."""

    def __init__(self, engine, pack, task, prediction, seed):
        self.pack, self.name = pack, f"{task}/{prediction}/{seed}"
        self.oracle = RestoreOracle(engine, pack, restore_operators(pack)[task], prediction, "identity", N_SAMPLES,
                                    STEPS, seed)
        self.param = pack.nodes.comfy_compat.parameterisation_of(
            self.oracle.model.get_model_object("model_sampling"))
        self.y = self.oracle.y.expand(N_SAMPLES, -1, -1, -1)
        mixture = self.oracle.mixture

        def denoise(x, sigma):
            return mixture.denoise(x.reshape(len(x), -1), sigma, self.param).reshape(x.shape).float()
        self.denoise = denoise

    def spin(self, knobs, seed=1, **fit):
        spin = self.pack.solvers.spin
        options = spin.SpinOptions(warm_start_iterations=knobs["warm_start_iterations"],
                                   guided_steps=knobs["guided_steps"], guidance_window=(0.0, knobs["guidance_end"]),
                                   proximity=knobs["proximity"], obs_std=RESTORE_NOISE,
                                   stochastic_renoise=knobs["renoise"] == "stochastic", **fit)
        sigmas = self.pack.nodes.spin_nodes.warm_start_sigmas(self.oracle.sigmas, knobs["warm_start_strength"])
        identity = lambda v: v  # noqa: E731
        out = spin.sample_spin(self.denoise, identity, identity, self.oracle.operator, self.y, sigmas, self.param,
                               torch.Generator().manual_seed(seed), options)
        return out.reshape(N_SAMPLES, -1).double(), spin.network_calls(sigmas, options)

    def dcdp(self, knobs, seed=1, **fit):
        dcdp = self.pack.solvers.dcdp
        options = dcdp.DCDPOptions(purification="ode", purification_steps=4, **knobs, **fit)
        identity = lambda v: v  # noqa: E731
        image, _ = dcdp.sample_dcdp(self.denoise, identity, identity, self.oracle.operator, self.y, self.oracle.sigmas,
                                    self.param, torch.Generator().manual_seed(seed), options)
        return image.reshape(N_SAMPLES, -1).double(), dcdp.network_calls(options, self.oracle.sigmas)

    def distance(self, samples):
        return self.oracle.distance(samples, torch.Generator().manual_seed(0))


def score(problems, method, knobs, **fit):
    distances = [problem.distance(getattr(problem, method)(knobs, **fit)[0]) for problem in problems]
    return sum(distances) / len(distances), distances


def coordinate_sweep(problems, method, grid, start, max_passes):
    """Set each knob in turn to its best grid value, the others held, until a pass changes nothing."""
    knobs, rows = dict(start), []
    best = None
    for sweep_pass in range(max_passes):
        before = dict(knobs)
        for name, values in grid.items():
            results = {}
            for value in values:
                trial = dict(knobs, **{name: value})
                try:
                    results[value] = score(problems, method, trial)
                except ValueError:  # a setting the method refuses (DCDP: end_strength above start_strength)
                    continue
            chosen = min(results, key=lambda v: results[v][0])
            if name in COSTLY:
                chosen = next(v for v in values if v in results and results[v][0] <= 1.02 * results[chosen][0])
            knobs[name] = chosen
            best = results[chosen]
            rows.append((sweep_pass + 1, name, {v: r[0] for v, r in results.items()}, chosen))
            print(f"  pass {sweep_pass + 1} {name}: " + ", ".join(f"{v}: {r[0]:.4f}" for v, r in results.items())
                  + f"  -> {chosen}", flush=True)
        if knobs == before:
            break
    return knobs, best, rows


def print_sweep_table(title, rows):
    print(f"\n{title}: mean sliced W2 over the problems, one knob varied at a time (chosen value in bold)\n")
    print("| pass | knob | values → mean W2 |")
    print("|---|---|---|")
    for sweep_pass, name, results, chosen in rows:
        cells = ", ".join((f"**{v}: {w:.4f}**" if v == chosen else f"{v}: {w:.4f}") for v, w in results.items())
        print(f"| {sweep_pass} | {name} | {cells} |")


def dense_fit(pack):
    """Context manager: every exact proximal solve replaced by a dense-matrix one (the tests' reference)."""
    import contextlib
    module = pack.solvers.linear_gaussian

    @contextlib.contextmanager
    def patched():
        original = module.proximal_solve
        module.proximal_solve = dense_proximal_solve
        try:
            yield
        finally:
            module.proximal_solve = original
    return patched()


def side_by_side(problems, pack, method, knobs, former_knobs, exact_fit, old_fit):
    print(f"\n{method} at the chosen defaults (sliced W2 to the exact posterior, mean over the seeds; floor = exact "
          "vs exact)\n")
    print(f"| task | sampling | floor | defaults, pack's exact fit | defaults, dense exact fit | defaults, former "
          f"inexact fit | former defaults | DInG, dense exact step, {STEPS} steps |")
    print("|---|---|---|---|---|---|---|---|")
    by_case, ratios = {}, []
    for problem in problems:
        pack_samples, calls = getattr(problem, method)(knobs, **exact_fit)
        with dense_fit(pack):
            dense_samples, _ = getattr(problem, method)(knobs, **exact_fit)
        old_samples, _ = getattr(problem, method)(knobs, **old_fit)
        former_samples, former_calls = getattr(problem, method)(former_knobs, **old_fit)
        ding = problem.oracle.dense_reference()
        values = [problem.oracle.floor] + [problem.distance(s) for s in (pack_samples, dense_samples, old_samples,
                                                                          former_samples, ding)]
        ratios.append((values[1] / values[2], values[3] / values[2]))
        by_case.setdefault(problem.name.rsplit("/", 1)[0], []).append(values)
    for case, rows in by_case.items():
        means = [sum(column) / len(column) for column in zip(*rows)]
        task, prediction = case.split("/")
        print(f"| {task} | {prediction} | " + " | ".join(f"{v:.3f}" for v in means) + " |")
    print(f"\n{method}: {calls} network calls (former defaults {former_calls}); pack/dense ratio worst "
          f"{max(r[0] for r in ratios):.3f}; former-fit/dense ratio mean {sum(r[1] for r in ratios) / len(ratios):.3f}, "
          f"worst {max(r[1] for r in ratios):.3f}")


def main():
    quick = "--quick" in sys.argv
    engine = comfy_harness.boot(with_test_nodes=True)
    pack = comfy_harness.pack_modules(engine)
    seeds = SEEDS[:1] if quick else SEEDS
    problems = [Problem(engine, pack, task, prediction, seed) for task in TASKS for prediction in PREDICTIONS
                for seed in seeds]
    print(f"engine: {engine.name} {engine.commit}; {len(problems)} problems, {N_SAMPLES} samples, {STEPS} steps")
    passes = 1 if quick else 4
    for method, grid, start, former, exact_fit, old_fit, node in (
            ("spin", SPIN_GRID, SPIN_START, SPIN_START, dict(fit_solver="auto"),
             dict(fit_solver="adam", fit_steps=50, fit_lr=0.05, fit_tolerance=0.0), "InverseSpinSampler"),
            ("dcdp", DCDP_GRID, DCDP_START, FORMER_DCDP, dict(dc_solver="auto"),
             dict(dc_solver="momentum", inner_steps=100, step_size=0.1, tolerance=0.0), "InverseDCDPSampler")):
        if f"--{'dcdp' if method == 'spin' else 'spin'}" in sys.argv:
            continue
        if "--no-sweep" in sys.argv:  # the side-by-side table at the nodes' current defaults
            knobs = {name: value for name, value in node_defaults(engine.nodes[node]).items() if name in grid}
        else:
            started = time.perf_counter()
            print(f"\n{method} sweep (fit: the pack's default, exact for these linear operators; DCDP purifies by a "
                  "4-step ODE)")
            knobs, best, rows = coordinate_sweep(problems, method, grid, start, passes)
            print_sweep_table(method, rows)
            print(f"\n{method} chosen: {knobs}  mean W2 {best[0]:.4f}  ({time.perf_counter() - started:.0f} s)")
        side_by_side(problems, pack, method, knobs, former, exact_fit, old_fit)


if __name__ == "__main__":
    main()
