"""Context-area cropping: time of the all-in-one DInG Inpaint node on a small hole in a large image,
cropped (native scale, and resized to a model resolution) against sampling the full image.

Tiny SD1.5-like UNet and VAE (random weights, tests/tiny_nodes), CPU, one process, the same seed.
The tiny UNet attends over every latent cell at full resolution, so the full-image cost grows
quadratically: 1024² px and beyond did not finish in 10 minutes on the shared 2-core CPU.
Run: .venv/bin/python benchmarks/bench_crop.py [--size 512] [--hole 48] [--margin 32] [--steps 4]
"""
import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import comfy_harness  # noqa: E402

OPTIONS = dict(cfg=1.0, scheduler="normal", denoise=1.0, variant="ding", eta_schedule="fm_square", eta_scale=1.0,
               obs_std=0.01, mask_mode="threshold", mask_threshold=0.95, mask_grow=0, mask_feather=0.0,
               paste_back=True, paste_feather=4.0)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--hole", type=int, default=48)
    parser.add_argument("--margin", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    engine = comfy_harness.boot(with_test_nodes=True)
    tiny = next(m for name, m in sys.modules.items() if name.endswith("inverse_test_nodes"))
    model, _, vae = tiny.TinyCheckpointLoader().load("sd15", 0)
    cond = tiny.tiny_conditioning("bench")
    image = torch.rand(1, args.size, args.size, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, args.size, args.size)
    start = args.size // 2 - args.hole // 2
    mask[:, start:start + args.hole, start:start + args.hole] = 1.0
    node = engine.nodes["InverseDInGInpaint"]()
    runs = [("full image", dict(context_crop=False)),
            ("context crop, native scale", dict(context_crop=True, context_margin=args.margin, crop_resolution=0)),
            ("context crop, resized to 256", dict(context_crop=True, context_margin=args.margin, crop_resolution=256))]
    with torch.inference_mode():
        node.inpaint(model, cond, cond, vae, image[:, :64, :64], mask[:, :64, :64] * 0 + 1, seed=0, steps=1, **OPTIONS)
        times = {}
        for label, extra in runs:
            begin = time.perf_counter()
            out, _, info = node.inpaint(model, cond, cond, vae, image, mask, seed=0, steps=args.steps, **OPTIONS, **extra)
            times[label] = time.perf_counter() - begin
            outside = (mask == 0)[..., None].expand_as(image)
            assert torch.equal(out[outside], image[outside])
            print(f"{label}: {times[label]:.2f} s  ({info})", flush=True)
    full = times["full image"]
    print(f"\n{args.size}x{args.size} px, {args.hole}x{args.hole} hole, margin {args.margin}, {args.steps} steps, CPU")
    print("| run | wall time (s) | full / this |")
    print("|---|---|---|")
    for label, _ in runs:
        print(f"| {label} | {times[label]:.2f} | {full / times[label]:.1f}x |")


if __name__ == "__main__":
    main()
