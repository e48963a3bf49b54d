"""Train the testbed autoencoder and measure it.

    .venv/bin/python -m testbed.train_vae                  train (fixed seed, ~20 min on one CPU core),
                                                         write testbed/vae_sd.safetensors, print metrics
    .venv/bin/python -m testbed.train_vae --evaluate-only  load the shipped weights, print the metrics
    COMFYUI_PATH=<ComfyUI checkout> .venv-upstream/bin/python -m testbed.train_vae --evaluate-only
                                                         the same through upstream ComfyUI

Training: ComfyUI's AutoencoderKL (testbed/vae.py's layout), Adam, L1 + MSE reconstruction in [−1, 1]
plus 1e-6·KL of the diagonal posterior (as SD's VAE), decoding a posterior sample; 32×32 patches first,
then 64×64 (the attention sees SD's 8×8 latent grid). Metrics on 64×64 patches of the held-out photos
(testbed/photos.py), encoder posterior mode: reconstruction PSNR, the spread of the decoder's Jacobian
column norms ‖J e_i‖ around their mean g, and the round trip ‖Enc(Dec z) − z‖ / ‖z‖.
"""
import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SEED = 0
PHASES = ((32, 16, 2700), (64, 8, 400))   # (patch size, batch, steps)
PEAK_LR, FINAL_LR, WARMUP = 2e-3, 5e-5, 100
KL_WEIGHT = 1e-6
INITIAL_LOGVAR = -6.0


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB of [B, ...] tensors in [0, 1]."""
    mse = (a - b).reshape(len(a), -1).square().mean(1).clamp_min(1e-12)
    return -10.0 * torch.log10(mse)


def reconstruct(vae, patches: torch.Tensor, vae_api: bool = False) -> torch.Tensor:
    """Encode (posterior mode) and decode [B, 3, H, W] in [0, 1]; with vae_api, through VAE.encode and
    VAE.decode on IMAGE tensors instead (the fork's encode samples the posterior)."""
    from .vae import decode_raw, posterior_mode
    if vae_api:
        images = patches.permute(0, 2, 3, 1)
        with torch.no_grad():
            return vae.decode(vae.encode(images)).reshape(images.shape).permute(0, 3, 1, 2)
    with torch.no_grad():
        return ((decode_raw(vae, posterior_mode(vae, patches)) + 1.0) / 2.0).clamp(0, 1)


def round_trip_error(vae, latents: torch.Tensor) -> torch.Tensor:
    """‖Enc(Dec z) − z‖ / ‖z‖ per latent, through pixels clamped to [0, 1] as VAE.decode returns them."""
    from .vae import decode_raw, posterior_mode
    with torch.no_grad():
        pixels = ((decode_raw(vae, latents) + 1.0) / 2.0).clamp(0, 1)
        back = posterior_mode(vae, pixels)
    flat = lambda t: t.reshape(len(t), -1)
    return (flat(back - latents).norm(dim=1) / flat(latents).norm(dim=1))


def jacobian_columns(vae, latent: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """‖J v‖ for each direction v [N, C, h, w] at one latent [C, h, w]: decoder output in [−1, 1] per
    latent unit, by forward-mode differentiation (batched: one decoder pass per chunk)."""
    from .vae import decode_raw
    norms = []
    for chunk in directions.split(64):
        point = latent[None].expand(len(chunk), -1, -1, -1).contiguous()
        with torch.no_grad(), torch.autograd.forward_ad.dual_level():
            out = decode_raw(vae, torch.autograd.forward_ad.make_dual(point, chunk))
            tangent = torch.autograd.forward_ad.unpack_dual(out).tangent
        norms.append(tangent.reshape(len(chunk), -1).norm(dim=1) / chunk.reshape(len(chunk), -1).norm(dim=1))
    return torch.cat(norms)


def measure(vae, log=print, n_jacobian_points: int = 4, seed: int = 0) -> dict:
    """All the testbed metrics of `vae` on the held-out 64×64 patches; prints them and returns them."""
    from . import photos
    from .vae import posterior_mode
    g = torch.Generator().manual_seed(seed)
    patches = photos.held_out_patches(64)
    results = {"patches": len(patches)}

    mode_psnr = psnr(reconstruct(vae, patches), patches)
    results["psnr_mean"] = float(mode_psnr.mean())
    results["psnr_min"] = float(mode_psnr.min())
    pooled = (reconstruct(vae, patches) - patches).square().mean()
    results["psnr_pooled"] = float(-10 * torch.log10(pooled))
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        api_psnr = psnr(reconstruct(vae, patches, vae_api=True), patches)
    results["psnr_vae_api_mean"] = float(api_psnr.mean())
    log(f"held-out reconstruction, {len(patches)} patches 64x64 of {', '.join(photos.HELD_OUT)}: PSNR mean "
        f"{results['psnr_mean']:.2f} dB (worst patch {results['psnr_min']:.2f}, pooled MSE "
        f"{results['psnr_pooled']:.2f}); through VAE.encode/VAE.decode {results['psnr_vae_api_mean']:.2f} dB")

    latents = posterior_mode(vae, patches)
    results["latent_std"] = float(latents.std())
    results["latent_mean"] = float(latents.mean())
    model = vae.first_stage_model
    with torch.no_grad():
        moments = model.quant_conv(model.encoder(patches * 2.0 - 1.0))
    posterior_std = torch.exp(0.5 * moments[:, latents.shape[1]:].clamp(-30, 20))
    results["posterior_std_median"] = float(posterior_std.median())
    log(f"latents: mean {results['latent_mean']:.3f}, std {results['latent_std']:.3f}; encoder posterior std "
        f"median {results['posterior_std_median']:.4f} ({results['posterior_std_median'] / results['latent_std']:.4f}"
        f" of the latent std)")

    # Jacobian column norms at a few held-out latents: every coordinate column and random unit directions
    picks = torch.randperm(len(latents), generator=g)[:n_jacobian_points]
    columns, randoms = [], []
    dim = latents[0].numel()
    for index in picks.tolist():
        point = latents[index]
        basis = torch.eye(dim).reshape(dim, *point.shape)
        columns.append(jacobian_columns(vae, point, basis))
        randoms.append(jacobian_columns(vae, point, torch.randn(64, *point.shape, generator=g)))
    columns, randoms = torch.stack(columns), torch.stack(randoms)
    gain = float(columns.mean())
    results.update(g=gain, column_std_over_g=float(columns.std() / gain),
                   column_min_over_g=float(columns.min() / gain), column_max_over_g=float(columns.max() / gain),
                   column_max_over_min=float(columns.max() / columns.min()),
                   random_g=float(randoms.mean()), random_std_over_g=float(randoms.std() / randoms.mean()),
                   random_min_over_max=float(randoms.min() / randoms.max()),
                   g_per_point=[float(c) for c in columns.mean(1)],
                   g_rms=float(columns.square().mean().sqrt()))
    per_channel = columns.reshape(len(picks), latents.shape[1], -1).mean((0, 2)) / gain
    results["channel_g_over_g"] = [float(c) for c in per_channel]
    log(f"decoder Jacobian column norms ||J e_i|| ([-1, 1] pixels per latent unit), {len(picks)} held-out latents "
        f"x {dim} coordinates: g = {gain:.4f} (rms {results['g_rms']:.4f}), std/g {results['column_std_over_g']:.3f}, "
        f"min/g {results['column_min_over_g']:.3f}, max/g {results['column_max_over_g']:.3f}, max/min "
        f"{results['column_max_over_min']:.1f}; per channel g_c/g {', '.join(f'{c:.2f}' for c in per_channel)}; "
        f"per latent g {', '.join(f'{c:.4f}' for c in results['g_per_point'])}")
    log(f"random unit directions (64 per latent): ||J v|| mean {results['random_g']:.4f}, std/mean "
        f"{results['random_std_over_g']:.3f}, min/max {results['random_min_over_max']:.3f}")

    # round trip ‖Enc(Dec z) − z‖ / ‖z‖: z = Enc(x), and z moved off the encoder's image
    errors = round_trip_error(vae, latents)
    results["round_trip_mean"], results["round_trip_max"] = float(errors.mean()), float(errors.max())
    log(f"round trip ||Enc(Dec z) - z|| / ||z||, z = Enc(x) of the {len(patches)} held-out patches: mean "
        f"{results['round_trip_mean']:.4f}, max {results['round_trip_max']:.4f}")
    scale = latents.std()
    for relative in (0.1, 0.3, 1.0):
        moved = latents + relative * scale * torch.randn(latents.shape, generator=g)
        errors = round_trip_error(vae, moved)
        key = f"round_trip_perturbed_{relative}"
        results[key + "_mean"], results[key + "_max"] = float(errors.mean()), float(errors.max())
        log(f"  z = Enc(x) + {relative} x latent std x N(0, I): mean {errors.mean():.4f}, max {errors.max():.4f}")
    noise = latents.mean() + scale * torch.randn(latents.shape, generator=g)
    errors = round_trip_error(vae, noise)
    results["round_trip_gaussian_mean"] = float(errors.mean())
    log(f"  z ~ N(latent mean, latent std^2 I) (no photo): mean {errors.mean():.4f}, max {errors.max():.4f}")
    return results


def learning_rate(step: int, total: int) -> float:
    if step < WARMUP:
        return PEAK_LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(total - WARMUP, 1)
    return FINAL_LR + 0.5 * (PEAK_LR - FINAL_LR) * (1 + math.cos(math.pi * progress))


def train(log=print, phases=PHASES):
    from . import photos
    from .vae import build_autoencoder
    torch.manual_seed(SEED)
    model = build_autoencoder().train()
    with torch.no_grad():  # start from a narrow posterior: the decoder learns from the mean at first
        model.quant_conv.bias[model.quant_conv.bias.shape[0] // 2:] = INITIAL_LOGVAR
    sampler = photos.PatchSampler(torch.Generator().manual_seed(SEED))
    noise = torch.Generator().manual_seed(SEED + 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=PEAK_LR, betas=(0.9, 0.99))
    total = sum(steps for _, _, steps in phases)
    step, start, running = 0, time.time(), []
    for size, batch, steps in phases:
        for _ in range(steps):
            for group in optimiser.param_groups:
                group["lr"] = learning_rate(step, total)
            x = sampler.batch(batch, size) * 2.0 - 1.0
            moments = model.quant_conv(model.encoder(x))
            mean, logvar = moments.chunk(2, dim=1)
            logvar = logvar.clamp(-30.0, 20.0)
            z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=noise)
            out = model.decoder(model.post_quant_conv(z))
            kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).sum() / batch
            mse = (out - x).square().mean()
            loss = (out - x).abs().mean() + mse + KL_WEIGHT * kl
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            running.append(float(-10 * math.log10(max(float(mse.detach()) / 4.0, 1e-12))))
            step += 1
            if step % 100 == 0 or step == total:
                log(f"step {step}/{total} ({size}x{size}, batch {batch}): train PSNR {sum(running) / len(running):.2f} dB, "
                    f"KL/latent {float(kl.detach()) / mean[0].numel():.2f}, lr {learning_rate(step - 1, total):.2e}, "
                    f"{time.time() - start:.0f} s")
                running = []
    return model.eval()


def save(model, path):
    from safetensors.torch import save_file
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt", "layout": "comfy AutoencoderKL, see testbed/vae.py"})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluate-only", action="store_true", help="load the shipped weights and measure them")
    parser.add_argument("--output", default=None, help="where to write the weights (default: the shipped file)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT / "scripts"))
    import comfy_harness
    engine = comfy_harness.boot(with_test_nodes=False)
    from .vae import WEIGHTS, load_testbed_vae
    print(f"engine: {engine.name} ({engine.commit})", flush=True)
    path = Path(args.output) if args.output else WEIGHTS
    if not args.evaluate_only:
        start = time.time()
        model = train(log=lambda line: print(line, flush=True))
        save(model, path)
        print(f"trained in {time.time() - start:.0f} s; wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", flush=True)
    start = time.time()
    vae = load_testbed_vae(path)
    measure(vae, log=lambda line: print(line, flush=True))
    print(f"measured in {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
