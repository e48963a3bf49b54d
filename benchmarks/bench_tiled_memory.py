"""Peak memory of the restorers' inner VAE passes at big sizes, tiled vs untiled.

A DInG Restore `pixel` step makes 2 decodes and 2 encodes one after another, Spin and DCDP a decode and an
encode per guided step, so a step's peak is its largest pass's. This measures one decode and one encode at
the output size, each through the pack's `LatentCodec` (so through ComfyUI's `decode_tiled` / `encode_tiled`
when tiled, as the restorers' `tiled_vae` widget makes them), under inference mode as ComfyUI's executor runs
them. The VAE is ComfyUI's at the SD VAE's real size (ch 128, channel multipliers 1, 2, 4, 4, two ResnetBlocks
per level, 4 latent channels) with random weights: the same activations as a checkpoint's. Each row runs in
its own process (`isolated.py`): wall time, peak resident-memory growth, and tiled / untiled.

Run: .venv/bin/python benchmarks/bench_tiled_memory.py [--size PX ...] [--mode off on]
     defaults: 1024 and 2048 px (the `auto` threshold, 1280², sits between them), both modes.
"""
import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "scripts"))
sys.path.insert(0, str(ROOT))
import comfy_harness  # noqa: E402
from isolated import measure, run_isolated  # noqa: E402


def tiny_nodes():
    return next(m for name, m in sys.modules.items() if name.endswith("inverse_test_nodes"))


def measure_pass(pack, kind, size, tiled):
    import comfy.latent_formats
    vae = tiny_nodes().tiny_vae(4, 1, fan_in=True, ch=128, ch_mult=[1, 2, 4, 4], num_res_blocks=2)
    codec = pack.nodes.vae_bridge.LatentCodec(vae, comfy.latent_formats.SD15(), vae.patcher, torch.device("cpu"), 0,
                                              None, tiled)
    generator = torch.Generator().manual_seed(0)
    latent = torch.randn(1, 4, size // 8, size // 8, generator=generator)
    pixels = torch.rand(1, 3, size, size, generator=generator) * 2 - 1
    with torch.inference_mode():   # as ComfyUI's executor runs a sampler
        codec.decode(torch.zeros(1, 4, 8, 8))  # load the VAE, warm up at a small size

    def one_pass():
        with torch.inference_mode():
            result = codec.decode(latent) if kind == "decode" else codec.encode(pixels)
        assert torch.isfinite(result).all()
    measure(one_pass)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--mode", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    engine = comfy_harness.boot(with_test_nodes=True)
    if args.measure:
        measure_pass(comfy_harness.pack_modules(engine), *json.loads(args.measure))
        return
    print(f"engine: {engine.name} ({engine.commit}); CPU, {torch.get_num_threads()} threads; SD-size VAE, random "
          "weights; one pass through the pack's codec")
    print("| size | pass | tiled_vae | wall time (s) | peak memory growth (MiB) | tiled / untiled memory |")
    print("|---|---|---|---|---|---|")
    for size in args.size:
        for kind in ("decode", "encode"):
            untiled = None
            for mode in args.mode:
                seconds, grown = run_isolated(__file__, json.dumps([kind, size, mode]), timeout=7200)
                untiled = grown if mode == "off" else untiled
                ratio = f"{grown / untiled:.2f}" if untiled else "—"
                print(f"| {size}² | {kind} | {mode} | {seconds:.1f} | {grown / 2**20:.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
