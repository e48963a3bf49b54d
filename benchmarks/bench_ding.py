"""DInG against ComfyUI's built-in inpainting, all measured in this run.

1. Oracle (exact Gaussian-mixture prior, through SamplerCustom): sliced W2 of the hidden region to
   the exact posterior, with the noise floor (two exact sample sets), and the network calls (NFE),
   at equal steps and, for the baselines, also at DInG's NFE.
   With LANPAINT_PATH=<LanPaint checkout> (upstream ComfyUI only), LanPaint runs on the same
   problems through its LanPaint_SamplerCustom node at DInG's number of network calls.
2. Tiny SD1.5-like UNet (random weights, 512x512 px, batch 1): wall time and peak memory growth of the
   sampling call, each in its own process, as ratios to plain euler at the same steps.

Run: .venv/bin/python benchmarks/bench_ding.py [--oracle-only]   (COMFYUI_PATH=... to use upstream ComfyUI)
"""
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import comfy_harness  # noqa: E402
from oracle_problems import PROBLEMS, hidden_coordinates, oracle_problem, sample_with_sampler_custom  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from isolated import measure, print_cost_table  # noqa: E402

N_SAMPLES = 400
STEPS = 20
COST_SIZE = 512


def oracle_table(engine, pack):
    import importlib
    ding = importlib.import_module(f"{engine.pack.__name__}.solvers.ding")
    oracle = importlib.import_module(f"{engine.pack.__name__}.demo.oracle_model")
    metrics = importlib.import_module(f"{engine.pack.__name__}.demo.metrics")
    ding_calls = ding.network_calls(torch.linspace(1, 0, STEPS + 1), "ding")
    rows = []
    for prediction in ("eps", "v_prediction", "flow"):
        for problem in PROBLEMS:
            mixture, observation, observed, posterior = oracle_problem(pack, problem)
            model = oracle.mixture_model(mixture, observation.shape[1:], prediction)
            generator = torch.Generator().manual_seed(0)
            hidden = hidden_coordinates(observed)
            exact = posterior.sample(N_SAMPLES, generator)[:, hidden]
            floor = metrics.sliced_wasserstein(exact, posterior.sample(N_SAMPLES, generator)[:, hidden], generator)
            runs = [("DInG" if variant == "ding" else f"DInG {variant}",
                     engine.nodes["InverseDInGSampler"]().get_sampler(variant, "fm_square", 1.0, 0.01)[0], STEPS,
                     ding.network_calls(torch.linspace(1, 0, STEPS + 1), variant)) for variant in ding.VARIANTS]
            for name in ("euler", "euler_ancestral"):
                sampler = engine.nodes["KSamplerSelect"]().get_sampler(name)[0]
                runs += [(f"ComfyUI {name}", sampler, STEPS, STEPS), (f"ComfyUI {name}", sampler, ding_calls, ding_calls)]
            for label, sampler, steps, calls in runs:
                samples = sample_with_sampler_custom(engine, model, sampler, observation, observed, N_SAMPLES, steps, 1)
                distance = metrics.sliced_wasserstein(samples[:, hidden], exact, generator)
                rows.append((prediction, problem, label, steps, calls, float(distance), float(floor)))
            for thinking_steps in (2, 5) if "LanPaint_SamplerCustom" in engine.nodes else ():
                steps, calls, samples = lanpaint_samples(engine, model, observation, observed, ding_calls, thinking_steps)
                distance = metrics.sliced_wasserstein(samples[:, hidden], exact, generator)
                rows.append((prediction, problem, f"LanPaint ({thinking_steps} thinking steps)", steps, calls,
                             float(distance), float(floor)))
    print("\n| sampling | problem | sampler | steps | NFE | sliced W2 to exact posterior | noise floor |")
    print("|---|---|---|---|---|---|---|")
    for prediction, problem, label, steps, calls, distance, floor in rows:
        print(f"| {prediction} | {problem} | {label} | {steps} | {calls} | {distance:.3f} | {floor:.3f} |")


def lanpaint_samples(engine, model, observation, observed, target_calls, thinking_steps=2):
    """LanPaint through its own SamplerCustom node, with as many steps as fit in `target_calls`."""
    from oracle_problems import NO_PROMPT
    counted, calls = model.clone(), []
    counted.set_model_unet_function_wrapper(
        lambda apply, args: calls.append(1) or apply(args["input"], args["timestep"], **args["c"]))
    lanpaint, euler = engine.nodes["LanPaint_SamplerCustom"](), engine.nodes["KSamplerSelect"]().get_sampler("euler")[0]

    def run(steps, n):
        sigmas = engine.nodes["BasicScheduler"]().get_sigmas(counted, "normal", steps, 1.0)[0]
        latent = {"samples": observation.repeat(n, 1, 1, 1), "noise_mask": (1.0 - observed)[None]}
        calls.clear()
        out = lanpaint.sample(counted, euler, sigmas, True, 1, 1.0, NO_PROMPT, NO_PROMPT, latent, thinking_steps,
                              "Image First")[0]["samples"]
        return len(calls), out.reshape(n, -1).double()

    per_step = run(10, 2)[0] / 10
    steps = max(1, round(target_calls / per_step))
    used, samples = run(steps, N_SAMPLES)
    return steps, used, samples


COST_LABELS = ["ComfyUI euler (plain)", "ComfyUI euler_ancestral", "DInG", "DInG delayed"]


def cost_run(engine, label):
    """Build the tiny model and one sampler, warm up with plain euler, then measure `label`."""
    tiny = next(m for name, m in sys.modules.items() if name.endswith("inverse_test_nodes"))
    model, _, vae = tiny.TinyCheckpointLoader().load("sd15", 0)
    image, mask = tiny.TinyLoadImage().load(COST_SIZE, 1)
    cond = tiny.tiny_conditioning("bench")
    latent = engine.nodes["SetLatentNoiseMask"]().set_mask(engine.nodes["VAEEncode"]().encode(vae, image)[0], mask)[0]
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", STEPS, 1.0)[0]
    select, ding_node = engine.nodes["KSamplerSelect"](), engine.nodes["InverseDInGSampler"]()
    samplers = {"ComfyUI euler (plain)": select.get_sampler("euler")[0],
                "ComfyUI euler_ancestral": select.get_sampler("euler_ancestral")[0],
                "DInG": ding_node.get_sampler("ding", "fm_square", 1.0, 0.01)[0],
                "DInG delayed": ding_node.get_sampler("delayed", "fm_square", 1.0, 0.01)[0]}
    sampler_custom = engine.nodes["SamplerCustom"]()
    with torch.inference_mode():  # as inside ComfyUI's executor
        sampler_custom.sample(model, True, 0, 1.0, cond, cond, samplers["ComfyUI euler (plain)"], sigmas[:3], latent)
        measure(lambda: sampler_custom.sample(model, True, 0, 1.0, cond, cond, samplers[label], sigmas, latent))


def main():
    engine = comfy_harness.boot(with_test_nodes=True)

    if "--measure" in sys.argv:
        cost_run(engine, sys.argv[sys.argv.index("--measure") + 1])
        return
    print(f"engine: {engine.name} ({engine.commit})")
    oracle_table(engine, comfy_harness.pack_modules(engine))
    if "--oracle-only" not in sys.argv:
        print_cost_table(f"Tiny SD1.5 UNet (random weights), {COST_SIZE}x{COST_SIZE} px, {STEPS} steps, CPU, one process "
                         "per run", COST_LABELS, __file__)


if __name__ == "__main__":
    main()
