"""All solvers side by side, measured in this run: decoupled refinement (DCDP), Spin, DInG
(inpainting only) and the DPS-style baseline.

1. Oracle (Gaussian-mixture prior over RGB images [3, 4, 4], lossless autoencoder, σ_y = 0.05 in
   [−1, 1] units, EPS sampling): sliced W2 to the exact posterior, network calls and wall time for
   inpainting, Gaussian blur and x2 super-resolution. DPS runs twice: at the smallest solver's
   network calls, and with as many steps as fit in Spin's wall time (equal wall time).
2. Peak memory: tiny SD1.5 UNet + tiny VAE, 256x256 px inpainting, one process per solver, as ratios
   to plain euler at 16 steps.

Run: .venv/bin/python benchmarks/bench_compare.py [--oracle-only]
"""
import importlib
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "scripts"))
sys.path.insert(0, str(ROOT))
import comfy_harness  # noqa: E402
from bench_spin import dps_sampler, run, spin_calls, spin_sampler, use_autograd_safe_attention  # noqa: E402
from isolated import measure, print_cost_table  # noqa: E402
from oracle_problems import PIXEL_NOISE, PIXEL_SHAPE, node_defaults, pixel_operators, pixel_problem  # noqa: E402

N_SAMPLES = 300
STEPS = 20


def module(engine, name):
    return importlib.import_module(f"{engine.pack.__name__}.{name}")


def dcdp_sampler(engine, vae, measurement, operator):
    """DCDP Sampler at its widget defaults (chosen by benchmarks/sweep_spin_dcdp.py)."""
    node = engine.nodes["InverseDCDPSampler"]
    return node().get_sampler(vae, measurement, operator, **node_defaults(node))[0]


def dcdp_calls(engine, sigmas):
    dcdp = module(engine, "solvers.dcdp")
    options = node_defaults(engine.nodes["InverseDCDPSampler"])
    options.pop("tiled_vae")  # how the VAE runs, not what DCDP computes
    return dcdp.network_calls(dcdp.DCDPOptions(**options), sigmas)


def timed(call):
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def oracle_rows(engine):
    oracle, bridge = module(engine, "demo.oracle_model"), module(engine, "nodes.vae_bridge")
    metrics, compat = module(engine, "demo.metrics"), module(engine, "nodes.comfy_compat")
    rows = []
    for task, operator in pixel_operators(comfy_harness.pack_modules(engine)).items():
        if task == "sr_bicubic_x2":
            continue
        mixture, y, exact, floor = pixel_problem(comfy_harness.pack_modules(engine), operator, N_SAMPLES)
        generator = torch.Generator().manual_seed(0)
        model, vae = oracle.mixture_model(mixture, PIXEL_SHAPE, "eps"), oracle.pass_through_vae(3)
        param = compat.parameterisation_of(compat.model_sampling_of(model))
        sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", STEPS, 1.0)[0]
        empty, measurement = torch.zeros(N_SAMPLES, *PIXEL_SHAPE), bridge.pixels_to_image(y)
        results = []

        sampler = dcdp_sampler(engine, vae, measurement, operator)
        samples, seconds = timed(lambda: run(engine, model, sampler, sigmas, empty))
        results.append(("DCDP", dcdp_calls(engine, sigmas), samples, seconds))
        samples, spin_seconds = timed(lambda: run(engine, model, spin_sampler(engine, vae, measurement, operator, PIXEL_NOISE / 2),
                                                  sigmas, empty))
        results.append(("Spin", spin_calls(engine, sigmas), samples, spin_seconds))
        if task == "inpaint":
            ding = engine.nodes["InverseDInGSampler"]().get_sampler("ding", "fm_square", 1.0, PIXEL_NOISE)[0]
            latent = y.expand(N_SAMPLES, -1, -1, -1)
            hole = 1.0 - operator.observed_mask[0]
            samples, seconds = timed(lambda: engine.nodes["SamplerCustom"]().sample(
                model, True, 1, 1.0, [[torch.zeros(1, 1, 1), {}]], [[torch.zeros(1, 1, 1), {}]], ding, sigmas,
                {"samples": latent, "noise_mask": hole[None]})[0]["samples"])
            results.append(("DInG", 2 * STEPS - 1, samples, seconds))
        probe_steps = 5
        probe_sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", probe_steps, 1.0)[0]
        _, probe_seconds = timed(lambda: run(engine, model, dps_sampler(engine, vae, y, operator, param, 1.0),
                                             probe_sigmas, empty))
        equal_time_steps = max(2, round(spin_seconds / (probe_seconds / probe_steps)))
        for dps_steps in sorted({min(r[1] for r in results), equal_time_steps}):
            dps_sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", dps_steps, 1.0)[0]
            samples, seconds = timed(lambda: run(engine, model, dps_sampler(engine, vae, y, operator, param, 1.0),
                                                 dps_sigmas, empty))
            label = "DPS (equal wall time)" if dps_steps == equal_time_steps else "DPS (equal NFE)"
            results.append((label, dps_steps, samples, seconds))
        for label, calls, samples, seconds in results:
            distance = float(metrics.sliced_wasserstein(samples.reshape(N_SAMPLES, -1).double(), exact, generator))
            rows.append((task, label, calls, seconds, distance, floor))
    return rows


COST_LABELS = ["ComfyUI euler (plain)", "DInG", "Spin", "DCDP", "DPS"]


def cost_run(engine, label):
    """Tiny SD1.5 + tiny VAE, 256 px inpainting; warm up with euler, then measure one solver."""
    tiny = next(m for name, m in sys.modules.items() if name.endswith("inverse_test_nodes"))
    bridge, compat = module(engine, "nodes.vae_bridge"), module(engine, "nodes.comfy_compat")
    model, _, vae = tiny.TinyCheckpointLoader().load("sd15", 0)
    use_autograd_safe_attention(vae)
    image, mask = tiny.TinyLoadImage().load(256, 1)
    operator = engine.nodes["InverseOperatorInpaint"]().build(mask)[0]
    measurement = engine.nodes["InverseDegradeImage"]().degrade(image, operator, 0.0, 0)[0]
    cond = tiny.tiny_conditioning("bench")
    latent = engine.nodes["VAEEncode"]().encode(vae, image)[0]["samples"]
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", 16, 1.0)[0]
    param = compat.parameterisation_of(compat.model_sampling_of(model))
    hole = engine.nodes["SetLatentNoiseMask"]().set_mask({"samples": latent}, mask)[0]
    samplers = {
        "ComfyUI euler (plain)": lambda: run(engine, model, engine.nodes["KSamplerSelect"]().get_sampler("euler")[0],
                                             sigmas, latent, cond),
        "DInG": lambda: engine.nodes["SamplerCustom"]().sample(
            model, True, 1, 1.0, cond, cond, engine.nodes["InverseDInGSampler"]().get_sampler("ding", "fm_square", 1.0, 0.01)[0],
            sigmas, hole),
        "Spin": lambda: run(engine, model, spin_sampler(engine, vae, measurement, operator, 0.01), sigmas, latent, cond),
        "DCDP": lambda: run(engine, model, dcdp_sampler(engine, vae, measurement, operator), sigmas, latent, cond),
        "DPS": lambda: run(engine, model, dps_sampler(engine, vae, bridge.image_to_pixels(measurement, "cpu"), operator,
                                                      param, 1.0), sigmas, latent, cond),
    }
    run(engine, model, engine.nodes["KSamplerSelect"]().get_sampler("euler")[0], sigmas[:3], latent, cond)
    vae.encode(vae.decode(latent))
    measure(samplers[label])


def main():
    engine = comfy_harness.boot(with_test_nodes=True)
    if "--measure" in sys.argv:
        cost_run(engine, sys.argv[sys.argv.index("--measure") + 1])
        return
    print(f"engine: {engine.name} ({engine.commit})")
    rows = oracle_rows(engine)
    print("\n| task | solver | NFE | wall time (s) | sliced W2 to exact posterior | noise floor |")
    print("|---|---|---|---|---|---|")
    for task, label, calls, seconds, distance, floor in rows:
        print(f"| {task} | {label} | {calls} | {seconds:.2f} | {distance:.3f} | {floor:.3f} |")
    if "--oracle-only" not in sys.argv:
        print_cost_table("Tiny SD1.5 UNet + tiny VAE, 256x256 px inpainting, 16-step schedule, CPU, one process per run "
                         "(DPS clones autograd's saved tensors: its memory is overstated by up to one copy)",
                         COST_LABELS, __file__)


if __name__ == "__main__":
    main()
