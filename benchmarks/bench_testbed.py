"""Restorers through a trained, nonlinear decoder: the testbed (docs/testbed.md), against a long-run MCMC
reference of the exact posterior, all measured in this run (the references are cached on disk).

Prior: testbed/latent_prior.py's Gaussian mixture over the testbed VAE's latents of 16×16 photo patches
(2×2×4 latents), as an exact ComfyUI MODEL, EPS and flow. Problems: six operators on decoded pixels
(Gaussian blur, motion blur, ×2 and ×4 bicubic SR, denoising, inpainting), each with `--draws` truths (the
encoded latents of held-out photo patches) and a fresh measurement-noise draw per truth. Reference per
problem: preconditioned MALA on log p(z) + log N(y; A(Dec z), σ_y²I), two independent runs; their sliced
W2 at the restorers' sample count is the floor. Each restorer runs through SamplerCustom with ComfyUI's
VAE class at its node defaults, 20 steps, `--samples` draws; scored in pixels by sliced W2 to the
reference, PSNR of the mean against the truth, and the data residual ‖A·Dec(x) − y‖ / (σ_y·√m), ≈ 1 for a
posterior sample. Every cell prints the mean over the draws and the worst draw.

Run: .venv/bin/python benchmarks/bench_testbed.py                  (all problems, both families)
     .venv/bin/python benchmarks/bench_testbed.py --task sr_x4 --family eps --restorer pixel
References go to output/testbed_reference/ (delete it to recompute); --references-only fills the cache.
     .venv/bin/python benchmarks/bench_testbed.py --size 32 --reference fitted_low3 --task sr_x4 --draws 1
                        (32 px, 4x4 latents: two runs of a restorer stand in for the MCMC reference)
"""
import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "scripts"))
sys.path.insert(0, str(ROOT))
import comfy_harness  # noqa: E402
from dps_baseline import sample_dps  # noqa: E402
import oracle_problems  # noqa: E402
from oracle_problems import restore_testbed, restorer_node_sampler  # noqa: E402

SIZE, STEPS, MAX_DRAWS = 16, 20, 8
CACHE = ROOT.parent / "output" / "testbed_reference"
TASKS = ("gaussian_blur", "motion_blur", "sr_x2", "sr_x4", "denoise", "inpaint")  # testbed/reference.TASKS
DING = {"variant": "ding"}  # the variant every DInG row but the frozen_proxy and delayed ones was measured with
RESTORERS = {
    "pixel": ("DInG Restore (pixel)", "InverseDInGRestoreSampler", {**DING, "latent_solver": "pixel"}),
    "pixel_exact": ("DInG Restore (pixel, final_fit exact)", "InverseDInGRestoreSampler",
                    {**DING, "latent_solver": "pixel", "final_fit": "exact"}),
    "pixel_low1": ("DInG Restore (pixel, exact below noise 1)", "InverseDInGRestoreSampler",
                   {**DING, "latent_solver": "pixel", "exact_below_noise": 1.0}),
    "pixel_low3": ("DInG Restore (pixel, exact below noise 3)", "InverseDInGRestoreSampler",
                   {**DING, "latent_solver": "pixel", "exact_below_noise": 3.0}),
    "fitted": ("DInG Restore (fitted, every step decoded)", "InverseDInGRestoreSampler",
               {**DING, "latent_solver": "fitted", "predict_above_noise": 0.0}),
    "fitted_delayed": ("DInG Restore (fitted, every step decoded, delayed)", "InverseDInGRestoreSampler",
                       {"latent_solver": "fitted", "predict_above_noise": 0.0, "variant": "delayed"}),
    "fitted_exact": ("DInG Restore (fitted, final_fit exact)", "InverseDInGRestoreSampler",
                     {**DING, "latent_solver": "fitted", "final_fit": "exact"}),
    "fitted_predict1": ("DInG Restore (fitted, predicted above noise 1)", "InverseDInGRestoreSampler",
                        {**DING, "latent_solver": "fitted", "predict_above_noise": 1.0}),
    "fitted_predict3": ("DInG Restore (fitted, predicted above noise 3, variant ding: the default before "
                        "frozen_proxy)", "InverseDInGRestoreSampler",
                        {**DING, "latent_solver": "fitted", "predict_above_noise": 3.0}),
    "fitted_predict5": ("DInG Restore (fitted, predicted above noise 5)", "InverseDInGRestoreSampler",
                        {**DING, "latent_solver": "fitted", "predict_above_noise": 5.0}),
    "fitted_decode2": ("DInG Restore (fitted, predicted above noise 3, every 2nd step decoded below)",
                       "InverseDInGRestoreSampler", {**DING, "latent_solver": "fitted", "decode_every": 2}),
    "fitted_frozen": ("DInG Restore (fitted, predicted above noise 3, variant frozen_proxy: the default)",
                      "InverseDInGRestoreSampler", {"latent_solver": "fitted", "variant": "frozen_proxy"}),
    "fitted_frozen_exact": ("DInG Restore (fitted, frozen_proxy, final_fit exact)", "InverseDInGRestoreSampler",
                            {"latent_solver": "fitted", "variant": "frozen_proxy", "final_fit": "exact"}),
    "fitted_decode3": ("DInG Restore (fitted, predicted above noise 3, every 3rd step decoded below)",
                       "InverseDInGRestoreSampler", {**DING, "latent_solver": "fitted", "decode_every": 3}),
    "fitted_low3": ("DInG Restore (fitted, exact below noise 3)", "InverseDInGRestoreSampler",
                    {**DING, "latent_solver": "fitted", "exact_below_noise": 3.0}),
    "linearized": ("DInG Restore (linearized)", "InverseDInGRestoreSampler", {**DING, "latent_solver": "linearized"}),
    "spin": ("Spin", "InverseSpinSampler", {}),
    "spin_plain": ("Spin, encoder_correction off (before)", "InverseSpinSampler", {"encoder_correction": False}),
    "dcdp": ("DCDP", "InverseDCDPSampler", {}),
    "dcdp_plain": ("DCDP, encoder_correction off (before)", "InverseDCDPSampler", {"encoder_correction": False}),
    "dps": ("DPS (grad through denoiser + decoder)", None, {}),
    "ding_inpaint": ("DInG Inpaint (the latent-mask node, inpainting only)", "InverseDInGInpaint", {}),
    "ding_inpaint_half": ("DInG Inpaint, mask_threshold 0.5 (the known latent column kept)", "InverseDInGInpaint",
                          {"mask_threshold": 0.5}),
}
INPAINT_NODES = {"ding_inpaint", "ding_inpaint_half"}  # take the image and its mask, not an operator


def problems(pack, task, draws, size=SIZE):
    """The first `draws` of MAX_DRAWS problems of one task: truths = encoded held-out patches, one noise
    draw each (seeded, so draw k is the same problem whatever `draws` is)."""
    reference, prior = pack.testbed.reference, pack.testbed.latent_prior
    operator, noise_std = reference.task_operator(task, size)
    generator = torch.Generator().manual_seed(1000 + TASKS.index(task))
    truths = prior.encode_patches(prior.held_out_truths(size, MAX_DRAWS, generator))
    return [reference.make_problem(operator, truths[i:i + 1], noise_std, generator) for i in range(MAX_DRAWS)][:draws]


def reference_samples(pack, task, draw, problem, chains, steps):
    """Two independent MALA runs' decoded samples (cached) and the split-R-hat over both."""
    size = "" if problem.size == SIZE else f"_px{problem.size}"
    path = CACHE / f"{task}_{draw}_c{chains}_s{steps}{size}.pt"
    if path.exists():
        return torch.load(path)
    reference = pack.testbed.reference
    runs = [reference.run_mala(problem, chains, steps, seed=seed) for seed in (1, 2)]
    target = reference.Posterior(problem)
    result = {"first": target.decode(runs[0].flat()).float(), "second": target.decode(runs[1].flat()).float(),
              "rhat": float(reference.split_rhat(torch.cat([r.samples for r in runs], 1)).max()),
              "seconds": sum(r.seconds for r in runs)}
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(result, path)
    return result


class Scores:
    """Per draw: sliced W2 to the reference, PSNR of the mean, mean data residual."""

    def __init__(self):
        self.w2, self.psnr, self.residual, self.worst_sample = [], [], [], []

    def add(self, pack, problem, pixels, reference_pixels):
        reference = pack.testbed.reference
        self.w2.append(float(pack.demo.metrics.sliced_wasserstein(pixels.double(), reference_pixels.double(),
                                                                      torch.Generator().manual_seed(0))))
        self.psnr.append(reference.psnr_against_truth(problem, pixels.mean(0)))
        residual = torch.nan_to_num(reference.data_residuals(problem, pixels), nan=math.inf)
        self.residual.append(float(residual.mean()))
        self.worst_sample.append(float(residual.max()))

    def row(self):
        mean = lambda values: sum(values) / len(values)
        return (f"{mean(self.w2):.4f} ({max(self.w2):.4f}) | {mean(self.psnr):.2f} ({min(self.psnr):.2f}) | "
                f"{mean(self.residual):.2f} ({min(self.residual):.2f}–{max(self.residual):.2f}) | "
                f"{max(self.worst_sample):.2f}")


def restorer_sampler(engine, pack, key, vae, model, problem, report=None):
    label, node_id, overrides = RESTORERS[key]
    if report is not None and node_id == "InverseDInGRestoreSampler":
        overrides = dict(overrides, report=report)   # counts the run's calls and decoder passes
    if node_id is None:   # DPS, at DInG's network calls
        import comfy.samplers
        param = pack.nodes.comfy_compat.parameterisation_of(model.get_model_object("model_sampling"))
        return comfy.samplers.KSAMPLER(sample_dps, extra_options={
            "vae": vae, "measurement": problem.measurement, "operator": problem.operator, "param": param,
            "scale": 1.0}), 2 * STEPS - 1
    return restorer_node_sampler(engine, pack, node_id, overrides, vae, problem), STEPS


def restore(engine, pack, key, vae, model, problem, samples, seed, report=None):
    if key in INPAINT_NODES:
        return inpaint_node(engine, pack, key, vae, model, problem, samples, seed)
    sampler, steps = restorer_sampler(engine, pack, key, vae, model, problem, report)
    return restore_testbed(engine, pack, model, sampler, problem, samples, steps, seed)


def inpaint_node(engine, pack, key, vae, model, problem, samples, seed):
    """DInG Inpaint as a user wires it: the measured image (hidden pixels grey) and the hidden pixels as the
    MASK, at the node's defaults, 20 steps, cfg 1; its sampled LATENT decoded (unclamped) as the other rows."""
    _, node_id, overrides = RESTORERS[key]
    node = engine.nodes[node_id]
    options = {**oracle_problems.node_defaults(node), **overrides}
    options.update(seed=seed, steps=STEPS, cfg=1.0, scheduler="normal", denoise=1.0, paste_back=False)
    image = ((problem.measurement + 1.0) / 2.0).clamp(0, 1).movedim(1, -1).expand(samples, -1, -1, -1)
    hole = (1.0 - problem.operator.observed_mask.reshape(1, problem.size, problem.size)).expand(samples, -1, -1)
    print(f"<!-- {key}: the encoder's round trip Dec(Enc(x)) is {encoder_round_trip(pack, vae, problem):.2f} "
          f"(x the true image) and {encoder_round_trip(pack, vae, problem, image[:1]):.2f} (x the measured one, "
          "its hole grey) noise levels off the measurement -->", flush=True)
    cond = oracle_problems.NO_PROMPT
    latent = node().inpaint(model=model, positive=cond, negative=cond, vae=vae, image=image.contiguous(),
                            mask=hole.contiguous(), **options)[1]["samples"]
    return pack.testbed.reference.Posterior(problem).decode(latent.reshape(len(latent), -1))


def encoder_round_trip(pack, vae, problem, image=None):
    """The data residual of Dec(Enc(image)) (posterior mode; image an IMAGE [1, s, s, 3], the truth by default):
    how close a latent that keeps the encoded photo can come to y."""
    testbed_vae, reference = pack.testbed.vae, pack.testbed.reference
    if image is None:
        image = ((problem.truth + 1.0) / 2.0).clamp(0, 1).movedim(1, -1)
    with torch.no_grad():
        pixels = testbed_vae.decode_raw(vae, testbed_vae.posterior_mode(vae, image.movedim(-1, 1).contiguous()))
    return float(reference.data_residuals(problem, pixels)[0])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", nargs="*", default=list(TASKS), choices=TASKS)
    parser.add_argument("--family", nargs="*", default=["eps", "flow"], choices=["eps", "flow"])
    parser.add_argument("--restorer", nargs="*", default=list(RESTORERS), choices=list(RESTORERS))
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--first-draw", type=int, default=0, help="skip the draws before this one (to add draws)")
    parser.add_argument("--chains", type=int, default=32)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--references-only", action="store_true")
    parser.add_argument("--size", type=int, default=SIZE, choices=[16, 32], help="image side (32: 4x4 latents)")
    parser.add_argument("--reference", default="mala", choices=["mala", *RESTORERS],
                        help="mala (default): the MCMC reference; or a restorer whose two runs (other seeds) stand in "
                             "for it, e.g. fitted_low3 at --size 32, where no MCMC reference is cached")
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = comfy_harness.boot(with_test_nodes=False)
    pack = comfy_harness.pack_modules(engine)
    vae = pack.testbed.latent_prior.testbed_vae()
    models = {family: pack.testbed.latent_prior.prior_model(family, args.size) for family in args.family}
    print("| task | family | restorer | sliced W2 mean (worst draw) | PSNR of the mean, dB (worst) | "
          "data residual mean (draw range) | worst sample's residual |")
    print("|---|---|---|---|---|---|---|", flush=True)
    for task in args.task:
        cells = {(family, key): Scores() for family in args.family for key in ["exact", *args.restorer]}
        for draw, problem in enumerate(problems(pack, task, args.draws, args.size)):
            if draw < args.first_draw:
                continue
            if args.reference == "mala":
                refs = reference_samples(pack, task, draw, problem, args.chains, args.steps)
                print(f"<!-- {task} draw {draw}: split-R-hat {refs['rhat']:.3f}, reference {refs['seconds']:.0f} s -->",
                      flush=True)
            if args.references_only:
                continue
            for family in args.family:
                if args.reference != "mala":
                    refs = {run: restore(engine, pack, args.reference, vae, models[family], problem, args.samples,
                                         seed) for run, seed in (("first", 10_000 + draw), ("second", 20_000 + draw))}
                cells[(family, "exact")].add(pack, problem, refs["second"][:args.samples], refs["first"])
                for key in args.restorer:
                    start, report = time.time(), pack.nodes.restoration.RunReport()
                    pixels = restore(engine, pack, key, vae, models[family], problem, args.samples, draw, report)
                    cells[(family, key)].add(pack, problem, pixels, refs["first"])
                    work = f", {report.describe_work()}" if report.network_calls else ""
                    print(f"<!-- {task} {family} {key} draw {draw}: W2 {cells[(family, key)].w2[-1]:.4f}, "
                          f"residual {cells[(family, key)].residual[-1]:.2f}, {time.time() - start:.0f} s{work} -->",
                          flush=True)
        if args.references_only:
            continue
        for (family, key), scores in cells.items():
            floor = "exact" if args.reference == "mala" else f"{RESTORERS[args.reference][0]}, as the reference"
            label = f"{floor} (reference run 2: the floor)" if key == "exact" else RESTORERS[key][0]
            print(f"| {task} | {family} | {label} | {scores.row()} |", flush=True)


if __name__ == "__main__":
    main()
