"""Spin against a DPS-style baseline (gradient through the denoiser and decoder) at equal network
calls, all measured in this run.

1. Oracle: Gaussian-mixture prior over RGB images [3, 4, 4] with a lossless autoencoder; sliced W2 to
   the exact posterior for inpainting, Gaussian blur and x2 box super-resolution, VE and flow; the
   naive baselines (prior samples, SDEdit from the first guess at t*) and the noise floor alongside.
2. Tiny SD1.5-like UNet with a tiny VAE (random weights), 256x256 px, x4 super-resolution: wall time
   and peak memory growth, as ratios to plain euler at the same number of network calls.

Run: .venv/bin/python benchmarks/bench_spin.py [--oracle-only]   (COMFYUI_PATH=... for upstream ComfyUI)
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
from dps_baseline import sample_dps  # noqa: E402
from isolated import measure, print_cost_table  # noqa: E402
from oracle_problems import PIXEL_NOISE, PIXEL_SHAPE, node_defaults, pixel_operators, pixel_problem  # noqa: E402
from oracle_problems import run_sampler_custom as run  # noqa: E402

N_SAMPLES = 300
STEPS = 20


def module(engine, name):
    return importlib.import_module(f"{engine.pack.__name__}.{name}")


def spin_defaults(engine):
    """Spin Sampler's widget defaults (chosen by benchmarks/sweep_spin_dcdp.py): what a user gets."""
    return node_defaults(engine.nodes["InverseSpinSampler"])


def spin_sampler(engine, vae, measurement, operator, noise):
    knobs = dict(spin_defaults(engine), measurement_noise=noise)
    return engine.nodes["InverseSpinSampler"]().get_sampler(vae, measurement, operator, **knobs)[0]


def spin_calls(engine, sigmas):
    knobs, spin_nodes = spin_defaults(engine), module(engine, "nodes.spin_nodes")
    strength = knobs.pop("warm_start_strength")
    knobs.pop("tiled_vae")  # how the VAE runs, not what Spin computes
    return module(engine, "solvers.spin").network_calls(spin_nodes.warm_start_sigmas(sigmas, strength),
                                                        spin_nodes.spin_options(**knobs))


def dps_sampler(engine, vae, y, operator, param, scale):
    import comfy.samplers
    return comfy.samplers.KSAMPLER(sample_dps, extra_options={"vae": vae, "measurement": y, "operator": operator,
                                                              "param": param, "scale": scale})


def oracle_table(engine):
    oracle, bridge = module(engine, "demo.oracle_model"), module(engine, "nodes.vae_bridge")
    metrics, spin_nodes = module(engine, "demo.metrics"), module(engine, "nodes.spin_nodes")
    compat, strength = module(engine, "nodes.comfy_compat"), spin_defaults(engine)["warm_start_strength"]
    rows = []
    for prediction in ("eps", "flow"):
        for task, operator in pixel_operators(comfy_harness.pack_modules(engine)).items():
            if task == "sr_bicubic_x2":
                continue
            mixture, y, exact, floor = pixel_problem(comfy_harness.pack_modules(engine), operator, N_SAMPLES)
            generator = torch.Generator().manual_seed(0)
            model, vae = oracle.mixture_model(mixture, PIXEL_SHAPE, prediction), oracle.pass_through_vae(3)
            param = compat.parameterisation_of(compat.model_sampling_of(model))
            sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", STEPS, 1.0)[0]
            empty = torch.zeros(N_SAMPLES, *PIXEL_SHAPE)
            spin_nfe = spin_calls(engine, sigmas)
            samples = {}
            start = time.perf_counter()
            samples[("Spin", spin_nfe)] = run(engine, model, spin_sampler(engine, vae, bridge.pixels_to_image(y),
                                                                          operator, PIXEL_NOISE / 2), sigmas, empty)
            spin_time = time.perf_counter() - start
            euler = engine.nodes["KSamplerSelect"]().get_sampler("euler")[0]
            samples[("prior (ignores y)", STEPS)] = run(engine, model, euler, sigmas, empty)
            first_guess = bridge.pixels_to_image(operator.initial_guess(y).expand(N_SAMPLES, -1, -1, -1))
            cut = spin_nodes.warm_start_sigmas(sigmas, strength)
            samples[("SDEdit from first guess", len(cut) - 1)] = run(engine, model, euler, cut, vae.encode(first_guess))
            for dps_steps in (spin_nfe, STEPS * 5):
                dps_sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", dps_steps, 1.0)[0]
                start = time.perf_counter()
                samples[("DPS", dps_steps)] = run(engine, model, dps_sampler(engine, vae, y, operator, param, 1.0),
                                                  dps_sigmas, empty)
                if dps_steps == spin_nfe:
                    dps_time = time.perf_counter() - start
            for (label, calls), latent in samples.items():
                distance = float(metrics.sliced_wasserstein(latent.reshape(N_SAMPLES, -1).double(), exact, generator))
                rows.append((prediction, task, label, calls, distance, floor))
            rows.append((prediction, task, f"(wall time Spin / DPS at {spin_nfe} NFE: {spin_time / dps_time:.2f})",
                         "", float("nan"), floor))
    print("\n| sampling | task | sampler | NFE | sliced W2 to exact posterior | noise floor |")
    print("|---|---|---|---|---|---|")
    for prediction, task, label, calls, distance, floor in rows:
        print(f"| {prediction} | {task} | {label} | {calls} | {distance:.3f} | {floor:.3f} |")


def use_autograd_safe_attention(vae):
    """ComfyUI's CPU default (split attention) works in place, which autograd (DPS) cannot go through;
    every sampler of the cost table then runs on PyTorch's own attention, for a fair comparison."""
    import comfy.ldm.modules.attention as attention
    import comfy.ldm.modules.diffusionmodules.model as vae_model
    attention.optimized_attention = attention.optimized_attention_masked = attention.attention_pytorch
    for block in vae.first_stage_model.modules():
        if hasattr(block, "optimized_attention"):
            block.optimized_attention = vae_model.pytorch_attention


COST_LABELS = ["ComfyUI euler (plain)", "Spin", "DPS (grad through UNet + decoder)"]


def cost_run(engine, label):
    """Build the tiny model and one sampler, warm up with plain euler, then measure `label`."""
    tiny = next(m for name, m in sys.modules.items() if name.endswith("inverse_test_nodes"))
    bridge, compat = module(engine, "nodes.vae_bridge"), module(engine, "nodes.comfy_compat")
    model, _, vae = tiny.TinyCheckpointLoader().load("sd15", 0)
    use_autograd_safe_attention(vae)
    image, _ = tiny.TinyLoadImage().load(256, 1)
    operator = engine.nodes["InverseOperatorDownsample"]().build(4, "bicubic")[0]
    measurement = engine.nodes["InverseDegradeImage"]().degrade(image, operator, 0.0, 0)[0]
    cond = tiny.tiny_conditioning("bench")
    latent = torch.zeros(1, 4, 32, 32)
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", STEPS, 1.0)[0]
    calls = spin_calls(engine, sigmas)
    equal_sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", calls, 1.0)[0]
    param = compat.parameterisation_of(compat.model_sampling_of(model))
    y = bridge.image_to_pixels(measurement, "cpu")
    euler = engine.nodes["KSamplerSelect"]().get_sampler("euler")[0]
    runs = {"ComfyUI euler (plain)": (euler, equal_sigmas),
            "Spin": (spin_sampler(engine, vae, measurement, operator, 0.01), sigmas),
            "DPS (grad through UNet + decoder)": (dps_sampler(engine, vae, y, operator, param, 1.0), equal_sigmas)}
    run(engine, model, euler, equal_sigmas[:3], latent, cond)  # warm-up, the same for every label
    vae.encode(vae.decode(latent))
    sampler, run_sigmas = runs[label]
    measure(lambda: run(engine, model, sampler, run_sigmas, latent, cond))
    return calls


def main():
    engine = comfy_harness.boot(with_test_nodes=True)
    if "--measure" in sys.argv:
        cost_run(engine, sys.argv[sys.argv.index("--measure") + 1])
        return
    print(f"engine: {engine.name} ({engine.commit})")
    oracle_table(engine)
    if "--oracle-only" not in sys.argv:
        print_cost_table("Tiny SD1.5 UNet + tiny VAE, 256x256 px, x4 SR, equal network calls, CPU, one process per "
                         "run. DPS's autograd clones its saved tensors (ComfyUI adds residuals in place), which "
                         "overstates its memory by up to one copy of the saved activations.", COST_LABELS, __file__)


if __name__ == "__main__":
    main()
