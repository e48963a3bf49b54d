"""Distance to the exact posterior against network calls (NFE) on the oracle, for DInG (both
variants), ComfyUI's built-in inpainting (euler, euler_ancestral) at several step counts, and LanPaint
when it is loaded (EXTRA_CUSTOM_NODES=<LanPaint checkout>, upstream ComfyUI). Draws docs/ding_nfe.png
with PIL (no plotting library needed) and prints the numbers.

Oracle as in bench_ding.py: exact Gaussian-mixture prior over 18 latent coordinates, 12 observed
(σ_y = 0.01), 400 samples through SamplerCustom, EPS sampling; sliced W2 of the 6 hidden coordinates.
Run: .venv/bin/python benchmarks/plot_ding_nfe.py
"""
import importlib
import math
import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))
import comfy_harness  # noqa: E402
from oracle_problems import PROBLEMS, hidden_coordinates, oracle_problem, sample_with_sampler_custom  # noqa: E402

N_SAMPLES = 400
DING_STEPS = (3, 5, 10, 20, 40)
DELAYED_STEPS = (5, 10, 20, 40, 80)
BASELINE_STEPS = (5, 10, 20, 40, 80)
LANPAINT_CALLS = (20, 40, 80)
COLOURS = {"DInG": (200, 30, 30), "DInG delayed": (240, 140, 30), "ComfyUI euler": (40, 90, 200),
           "ComfyUI euler_ancestral": (60, 170, 220), "LanPaint (5 thinking steps)": (40, 150, 60)}
OUT = ROOT / "docs" / "ding_nfe.png"


def curves(engine, pack, problem):
    ding = importlib.import_module(f"{engine.pack.__name__}.solvers.ding")
    oracle = importlib.import_module(f"{engine.pack.__name__}.demo.oracle_model")
    metrics = importlib.import_module(f"{engine.pack.__name__}.demo.metrics")
    mixture, observation, observed, posterior = oracle_problem(pack, problem)
    model = oracle.mixture_model(mixture, observation.shape[1:], "eps")
    generator = torch.Generator().manual_seed(0)
    hidden = hidden_coordinates(observed)
    exact = posterior.sample(N_SAMPLES, generator)[:, hidden]
    floor = float(metrics.sliced_wasserstein(exact, posterior.sample(N_SAMPLES, generator)[:, hidden], generator))
    node, select = engine.nodes["InverseDInGSampler"](), engine.nodes["KSamplerSelect"]()
    plans = {"DInG": [(node.get_sampler("ding", "fm_square", 1.0, 0.01)[0], s,
                       ding.network_calls(torch.linspace(1, 0, s + 1), "ding")) for s in DING_STEPS],
             "DInG delayed": [(node.get_sampler("delayed", "fm_square", 1.0, 0.01)[0], s, s) for s in DELAYED_STEPS]}
    for name in ("euler", "euler_ancestral"):
        plans[f"ComfyUI {name}"] = [(select.get_sampler(name)[0], s, s) for s in BASELINE_STEPS]
    result = {}
    for label, runs in plans.items():
        result[label] = []
        for sampler, steps, calls in runs:
            samples = sample_with_sampler_custom(engine, model, sampler, observation, observed, N_SAMPLES, steps, 1)
            result[label].append((calls, float(metrics.sliced_wasserstein(samples[:, hidden], exact, generator))))
    if "LanPaint_SamplerCustom" in engine.nodes:
        from bench_ding import lanpaint_samples
        label = "LanPaint (5 thinking steps)"
        result[label] = []
        for target in LANPAINT_CALLS:
            _, calls, samples = lanpaint_samples(engine, model, observation, observed, target, 5)
            result[label].append((calls, float(metrics.sliced_wasserstein(samples[:, hidden], exact, generator))))
    return result, floor


def font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def draw(panels, path):
    """One panel per problem: log-scale NFE across, sliced W2 up; the floor dashed."""
    width, height, pad_l, pad_r, pad_t, pad_b = 560, 420, 70, 20, 50, 60
    image = Image.new("RGB", (width * len(panels), height + 90), "white")
    d = ImageDraw.Draw(image)
    all_calls = [c for _, (res, _) in panels for pts in res.values() for c, _ in pts]
    x_lo, x_hi = math.log(min(all_calls) * 0.8), math.log(max(all_calls) * 1.25)
    for index, (title, (result, floor)) in enumerate(panels):
        ox = index * width
        y_hi = max(w for pts in result.values() for _, w in pts) * 1.08
        y_hi = min(y_hi, 2.5)

        def to_px(calls, value):
            x = ox + pad_l + (math.log(calls) - x_lo) / (x_hi - x_lo) * (width - pad_l - pad_r)
            y = pad_t + (1 - min(value, y_hi) / y_hi) * (height - pad_t - pad_b)
            return x, y
        d.rectangle([ox + pad_l, pad_t, ox + width - pad_r, height - pad_b], outline="black")
        d.text((ox + pad_l, 6), title, fill="black", font=font(16))
        for tick in (5, 10, 20, 40, 80):
            x, _ = to_px(tick, 0)
            d.line([x, height - pad_b, x, height - pad_b + 5], fill="black")
            d.text((x - 8, height - pad_b + 8), str(tick), fill="black", font=font(12))
        d.text((ox + width // 2 - 60, height - pad_b + 28), "network calls (NFE, log scale)", fill="black", font=font(13))
        for k in range(6):
            value = y_hi * k / 5
            _, y = to_px(1, value)
            d.line([ox + pad_l - 5, y, ox + pad_l, y], fill="black")
            d.text((ox + 8, y - 7), f"{value:.2f}", fill="black", font=font(12))
        d.text((ox + 8, pad_t - 18), "sliced W2 to exact posterior", fill="black", font=font(12))
        _, fy = to_px(1, floor)
        for x in range(ox + pad_l, ox + width - pad_r, 12):
            d.line([x, fy, x + 6, fy], fill=(120, 120, 120))
        d.text((ox + pad_l + 6, fy - 16), f"noise floor {floor:.3f}", fill=(100, 100, 100), font=font(12))
        for label, points in result.items():
            xy = [to_px(c, w) for c, w in points]
            d.line(xy, fill=COLOURS[label], width=3)
            for x, y in xy:
                d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=COLOURS[label])
    legend_y = height + 10
    for k, label in enumerate(l for l in COLOURS if any(l in res for _, (res, _) in panels)):
        x = 20 + (k % 3) * 360
        y = legend_y + (k // 3) * 24
        d.line([x, y + 8, x + 30, y + 8], fill=COLOURS[label], width=3)
        d.text((x + 38, y), label, fill="black", font=font(14))
    image.save(path)


def main():
    engine = comfy_harness.boot(with_test_nodes=False)

    panels = []
    print(f"engine: {engine.name} ({engine.commit}); EPS sampling, {N_SAMPLES} samples")
    print("| problem | sampler | NFE | sliced W2 | floor |\n|---|---|---|---|---|")
    for problem in PROBLEMS:
        result, floor = curves(engine, comfy_harness.pack_modules(engine), problem)
        for label, points in result.items():
            for calls, distance in points:
                print(f"| {problem} | {label} | {calls} | {distance:.3f} | {floor:.3f} |", flush=True)
        panels.append((f"{problem.replace('_', ' ')} (EPS)", (result, floor)))
    OUT.parent.mkdir(exist_ok=True)
    draw(panels, OUT)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
