"""DInG restoration (any linear operator) against Spin, DCDP and DPS, all measured in this run.

1. Fidelity on the exact oracle (scripts/oracle_problems.RestoreOracle): a Gaussian-mixture prior over
   latents decoded to RGB 8x8 by a pass-through autoencoder ("identity") or a linear SD-shaped one
   ("linear", 4 latent channels per 2x2 pixels, unequal column norms), σ_y = 0.05; sliced W2 to the
   exact posterior for Gaussian / motion blur, x2 / x4 bicubic SR and denoising, EPS and flow. DInG
   with both latent solvers and the dense exact step; Spin and DCDP at the nodes' defaults; DPS at
   DInG's network calls.
2. Cost of one step's extra work on a real-size SD1.5 VAE (random weights, ComfyUI's VAE class, CPU):
   decode, encode, a decoder VJP and JVP, and peak memory of each, at 256² px; the per-step
   cost of each solver follows (pixel: 2 decodes + 2 encodes; linearized: 1 decode + per CG iteration
   a JVP and a VJP; DPS: a UNet and decoder backward per step).

Run: .venv/bin/python benchmarks/bench_ding_restore.py [--oracle-only | --cost-only]
       [--ding pixel fitted fitted:frozen_proxy ...]  (the DInG rows: latent_solver[:variant]; pixel always)
       [--no-baselines]                          (no Spin, DCDP, DPS rows)
"""
import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "scripts"))
sys.path.insert(0, str(ROOT))
import comfy_harness  # noqa: E402
from bench_compare import dcdp_calls, dcdp_sampler  # noqa: E402
from bench_spin import spin_calls, spin_sampler  # noqa: E402
from dps_baseline import sample_dps  # noqa: E402
from isolated import measure, run_isolated  # noqa: E402
from oracle_problems import RESTORE_NOISE, RestoreOracle, restore_operators  # noqa: E402

N_SAMPLES = 200
STEPS = 20
TASKS = ("gaussian_blur", "motion_blur", "sr_x2", "sr_x4", "denoise")


DING_ROWS = ("pixel", "linearized")  # the DInG rows, latent_solver[:variant]; --ding replaces them


def ding_row(node, oracle, ding, row):
    """One DInG Restore row, `latent_solver` or `latent_solver:variant` (ding unless given; frozen_proxy and delayed:
    1 network call per step)."""
    solver, _, variant = row.partition(":")
    variant = variant or "ding"
    options = dict(measurement_noise=RESTORE_NOISE / 2, variant=variant, eta_schedule="fm_square",
                   eta_scale=1.0, solver_iterations=30, solver_tolerance=1e-4)
    sampler = node.get_sampler(oracle.vae, oracle.measurement, oracle.operator, latent_solver=solver, **options)[0]
    return sampler, None, ding.network_calls(oracle.sigmas, variant)


def samplers(engine, oracle, pack, ding_rows=DING_ROWS, baselines=True):
    import comfy.samplers
    node = engine.nodes["InverseDInGRestoreSampler"]()
    param = pack.nodes.comfy_compat.parameterisation_of(oracle.model.get_model_object("model_sampling"))
    calls = pack.solvers.ding.network_calls(oracle.sigmas, "ding")
    rows = {f"DInG ({row})": ding_row(node, oracle, pack.solvers.ding, row)
            for row in dict.fromkeys(("pixel", *ding_rows))}
    if not baselines:
        return rows
    dps_sigmas = engine.nodes["BasicScheduler"]().get_sigmas(oracle.model, "normal", calls, 1.0)[0]
    # Spin and DCDP at the nodes' defaults (chosen by benchmarks/sweep_spin_dcdp.py), σ_y given to Spin
    return {
        **rows,
        "Spin": (spin_sampler(engine, oracle.vae, oracle.measurement, oracle.operator, RESTORE_NOISE / 2), None,
                 spin_calls(engine, oracle.sigmas)),
        "DCDP": (dcdp_sampler(engine, oracle.vae, oracle.measurement, oracle.operator), None,
                 dcdp_calls(engine, oracle.sigmas)),
        "DPS": (comfy.samplers.KSAMPLER(sample_dps, extra_options={
            "vae": oracle.vae, "measurement": oracle.y, "operator": oracle.operator, "param": param,
            "scale": 1.0}), dps_sigmas, calls),
    }


def oracle_table(engine, ding_rows=DING_ROWS, baselines=True):
    pack = comfy_harness.pack_modules(engine)
    generator = torch.Generator().manual_seed(0)
    print("\n| autoencoder | sampling | task | sampler | NFE | sliced W2 | wall time (s) | floor |")
    print("|---|---|---|---|---|---|---|---|")
    for autoencoder in ("identity", "linear"):
        for prediction in ("eps", "flow"):
            for task in TASKS:
                oracle = RestoreOracle(engine, pack, restore_operators(pack)[task], prediction, autoencoder,
                                       N_SAMPLES, STEPS)
                rows = {}
                for label, (sampler, sigmas, calls) in samplers(engine, oracle, pack, ding_rows, baselines).items():
                    if autoencoder == "linear" and label in ("Spin", "DCDP", "DPS"):
                        continue  # the baselines are compared on the pixel-space oracle
                    start = time.perf_counter()
                    if sigmas is None:
                        samples = oracle.sample(sampler)
                    else:
                        out, _ = engine.nodes["SamplerCustom"]().sample(
                            oracle.model, True, 1, 1.0, [[torch.zeros(1, 1, 1), {}]], [[torch.zeros(1, 1, 1), {}]],
                            sampler, sigmas, {"samples": oracle.empty})
                        samples = out["samples"].reshape(N_SAMPLES, -1).double()
                    rows[label] = (calls, oracle.distance(samples, generator), time.perf_counter() - start)
                start = time.perf_counter()
                rows["dense exact step"] = (rows["DInG (pixel)"][0], oracle.distance(oracle.dense_reference(),
                                                                                     generator),
                                            time.perf_counter() - start)
                rows["prior (ignores y)"] = (0, oracle.distance(oracle.mixture.sample(N_SAMPLES, generator),
                                                                generator), 0.0)
                for label, (calls, distance, seconds) in rows.items():
                    print(f"| {autoencoder} | {prediction} | {task} | {label} | {calls} | {distance:.3f} | "
                          f"{seconds:.2f} | {oracle.floor:.3f} |", flush=True)


# --- cost of the solvers' extra work on a real-size VAE -------------------------------------------------

SD_VAE = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
          "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
COST_OPS = ("decode", "encode", "decoder JVP", "decoder VJP")


def real_size_vae():
    import logging

    import comfy.sd
    tiny = next(m for name, m in sys.modules.items() if name.endswith("inverse_test_nodes"))
    logging.disable(logging.WARNING)
    try:
        vae = comfy.sd.VAE(sd={}, config={"params": {"embed_dim": 4, "ddconfig": SD_VAE}})
    finally:
        logging.disable(logging.NOTSET)
    tiny._fill(vae.first_stage_model, 0, fan_in=True)
    return vae


def cost_run(engine, label):
    pack = comfy_harness.pack_modules(engine)
    op, size = label.rsplit(" @ ", 1)
    size = int(size)
    vae = real_size_vae()
    import comfy.latent_formats
    decode = pack.nodes.ding_restore_nodes.differentiable_decoder(vae, comfy.latent_formats.SD15(), "cpu")
    latent = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(0))
    image = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        decode(latent)  # warm-up, the same for every label

    def run():
        if op == "decode":
            with torch.no_grad():
                decode(latent)
        elif op == "encode":
            vae.encode(image)
        elif op == "decoder JVP":
            torch.func.jvp(decode, (latent,), (torch.randn_like(latent),))
        else:
            point = latent.clone().requires_grad_(True)
            pixels = decode(point)
            torch.autograd.grad(pixels, point, torch.randn_like(pixels))
    measure(run)


def cost_table():
    print("\nReal-size SD1.5 VAE (random weights), CPU, one process per measurement:")
    print("| operation | size | wall time (s) | time / decode | peak memory growth (MiB) |")
    print("|---|---|---|---|---|")
    for size in (256,):  # 512² forward-mode JVP needs ~30 GB on the CPU, more than CI machines have
        results = {op: run_isolated(__file__, f"{op} @ {size}") for op in COST_OPS}
        decode_time = results["decode"][0]
        for op, (seconds, grown) in results.items():
            print(f"| {op} | {size}² | {seconds:.2f} | {seconds / decode_time:.2f} | {grown / 2**20:.0f} |", flush=True)
        dec, enc, jvp, vjp = (results[op][0] for op in COST_OPS)
        print(f"| per step, pixel solver (2 decodes + 2 encodes) | {size}² | {2 * dec + 2 * enc:.2f} | "
              f"{(2 * dec + 2 * enc) / dec:.2f} | {max(results['decode'][1], results['encode'][1]) / 2**20:.0f} |")
        print(f"| per step, linearized solver, 10 CG iterations (decode + 10 JVP + 11 VJP) | {size}² | "
              f"{dec + 10 * jvp + 11 * vjp:.2f} | {(dec + 10 * jvp + 11 * vjp) / dec:.2f} | "
              f"{max(results['decoder JVP'][1], results['decoder VJP'][1]) / 2**20:.0f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--oracle-only", action="store_true")
    parser.add_argument("--cost-only", action="store_true")
    parser.add_argument("--ding", nargs="+", default=list(DING_ROWS),
                        help="the DInG rows, latent_solver[:variant] (pixel is always run)")
    parser.add_argument("--no-baselines", action="store_true", help="no Spin, DCDP, DPS rows")
    parser.add_argument("--measure", help=argparse.SUPPRESS)   # one cost measurement, in its own process
    args = parser.parse_args()
    engine = comfy_harness.boot(with_test_nodes=True)
    if args.measure:
        cost_run(engine, args.measure)
        return
    print(f"engine: {engine.name} ({engine.commit})")
    if not args.cost_only:
        oracle_table(engine, tuple(args.ding), baselines=not args.no_baselines)
    if not args.oracle_only:
        cost_table()


if __name__ == "__main__":
    main()
