"""The solvers on real-size architectures with random weights (the same compute as the checkpoints),
against plain ComfyUI sampling at the same steps, all measured in this run, one process per run.

Models (ComfyUI's own classes, configs as ComfyUI detects them from the checkpoints):
  sd15  SD1.5 UNet (320 channels, 860M parameters) + the SD VAE (ch 128, 4 latent channels)
  sdxl  SDXL UNet (320 channels, transformer depth 10, 2.6B parameters) + the SD VAE
  flux  Flux at full size (hidden 3072, 24 heads, 19 double + 38 single blocks, 256 T5 tokens as ComfyUI's
        Flux tokenizer pads to) + the 16-channel VAE at full width. A Flux with its own weights in every block
        needs ~48 GB in float32, so all double blocks share one block's weights and all single blocks another's:
        every block still runs its full computation (same FLOPs and activations), only ~2 GB of weights are held.
Tasks: inpainting a centre box (ComfyUI euler with a noise mask vs DInG), and x4 super-resolution
(ComfyUI euler from an empty latent, i.e. no measurement, vs DInG Restore (pixel and fitted with the ding variant;
fitted decoding every 2nd step; fitted with the frozen_proxy variant, the default; fitted with the delayed variant),
Spin and DCDP at the nodes' defaults). Each row: wall time and peak
memory growth of the SamplerCustom call, and the ratios to euler. On a GPU (CUDA) the peak is
torch.cuda.max_memory_allocated.

Run: .venv/bin/python benchmarks/bench_real_size.py [--family sd15|sdxl|flux ...] [--size PX] [--steps N]
                                                   [--row "DInG Restore" ...]  (only these rows, beside euler's)
     CPU defaults: 256 px, 8 steps; with COMFYUI_GPU=1 on a CUDA machine: 1024 px, 20 steps.
     Flux needs upstream ComfyUI (COMFYUI_PATH).
"""
import itertools
import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "scripts"))
sys.path.insert(0, str(ROOT))
import comfy_harness  # noqa: E402
from isolated import measure, run_isolated  # noqa: E402
from oracle_problems import node_defaults  # noqa: E402

FLUX_DEPTH = (19, 38)  # double, single blocks
UNET_COMMON = {"use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 320,
               "use_spatial_transformer": True, "legacy": False, "use_temporal_resblock": False,
               "use_temporal_attention": False, "dtype": torch.float32}
SD15_UNET = dict(UNET_COMMON, num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
                 transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
                 transformer_depth_middle=1, use_linear_in_transformer=False, context_dim=768, num_heads=8,
                 num_head_channels=-1, adm_in_channels=None)
SDXL_UNET = dict(UNET_COMMON, num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 4], transformer_depth=[0, 0, 2, 2, 10, 10],
                 transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10], transformer_depth_middle=10,
                 use_linear_in_transformer=True, context_dim=2048, num_heads=-1, num_head_channels=64,
                 adm_in_channels=2816, num_classes="sequential")
FLUX = {"image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": 768, "context_in_dim": 4096,
        "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24, "depth": 1,
        "depth_single_blocks": 1, "axes_dim": [16, 56, 56], "theta": 10000, "patch_size": 2,
        "qkv_bias": True, "guidance_embed": True}
CPU_SIZES = {"sd15": 256, "sdxl": 256, "flux": 256}
RESTORERS = {"DInG": "InverseDInGRestoreSampler", "Spin": "InverseSpinSampler", "DCDP": "InverseDCDPSampler"}
LABELS = ("inpaint: ComfyUI euler", "inpaint: DInG", "x4 SR: ComfyUI euler (ignores y)", "x4 SR: DInG Restore (pixel)",
          "x4 SR: DInG Restore (fitted)", "x4 SR: DInG Restore (fitted, decode_every 2)",
          "x4 SR: DInG Restore (fitted, frozen_proxy)", "x4 SR: DInG Restore (fitted, delayed)", "x4 SR: Spin",
          "x4 SR: DCDP")
ROW_SETTINGS = {"(pixel)": {"latent_solver": "pixel", "variant": "ding"},   # a row's settings over the node's defaults
                "(fitted)": {"latent_solver": "fitted", "variant": "ding"},
                "(fitted, decode_every 2)": {"latent_solver": "fitted", "variant": "ding", "decode_every": 2},
                "(fitted, frozen_proxy)": {"latent_solver": "fitted", "variant": "frozen_proxy"},
                "(fitted, delayed)": {"latent_solver": "fitted", "variant": "delayed"}}


def tiny_nodes():
    return next(m for name, m in sys.modules.items() if name.endswith("inverse_test_nodes"))


def flux_with_shared_blocks():
    """Flux's full depth, each kind of block repeated with one set of weights (see the module docstring)."""
    import comfy.supported_models as SM
    base = SM.Flux(FLUX).get_model({})
    net = base.diffusion_model
    net.double_blocks = torch.nn.ModuleList([net.double_blocks[0]] * FLUX_DEPTH[0])
    net.single_blocks = torch.nn.ModuleList([net.single_blocks[0]] * FLUX_DEPTH[1])
    return base


def build(family):
    """(MODEL, VAE, conditioning) at real size, random weights (std 1/√fan-in)."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models as SM
    tiny = tiny_nodes()
    if family == "sd15":
        base, channels, context, pooled = SM.SD15(SD15_UNET).get_model({}), 4, 768, None
    elif family == "sdxl":
        base, channels, context, pooled = SM.SDXL(SDXL_UNET).get_model({}), 4, 2048, 1280
    else:
        base, channels, context, pooled = flux_with_shared_blocks(), 16, 4096, 768
    tiny._fill(base.diffusion_model, 0, fan_in=True)
    # the weights held, each shared tensor once (ComfyUI's own count sums state_dict, which lists a shared
    # Flux block 19 / 38 times, and could make it choose a partial load on a GPU)
    held_bytes = sum(t.nelement() * t.element_size() for t in itertools.chain(base.parameters(), base.buffers()))
    model = comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(),
                                             offload_device=mm.unet_offload_device(), size=held_bytes)
    vae = tiny.tiny_vae(channels, 1, fan_in=True, ch=128, ch_mult=[1, 2, 4, 4], num_res_blocks=2)
    generator = torch.Generator().manual_seed(0)
    extra = {"guidance": 3.5}
    if pooled is not None:
        extra["pooled_output"] = torch.randn(1, pooled, generator=generator)
    tokens = 256 if family == "flux" else 77
    cond = [[torch.randn(1, tokens, context, generator=generator) * 0.1, extra]]
    return model, vae, cond


def measure_one(engine, family, size, steps, label):
    model, vae, cond = build(family)
    nodes = engine.nodes
    tiny = tiny_nodes()
    image, mask = tiny.TinyLoadImage().load(size, 1)
    sigmas = nodes["BasicScheduler"]().get_sigmas(model, "normal", steps, 1.0)[0]
    euler = nodes["KSamplerSelect"]().get_sampler("euler")[0]

    def sample(sampler, latent, add_noise=True):
        return nodes["SamplerCustom"]().sample(model, add_noise, 1, 1.0, cond, cond, sampler, sigmas, latent)[0]

    latent = nodes["VAEEncode"]().encode(vae, image)[0]
    if label.startswith("inpaint"):
        hole = nodes["SetLatentNoiseMask"]().set_mask(latent, mask)[0]
        sampler = euler if "euler" in label else nodes["InverseDInGSampler"]().get_sampler("ding", "fm_square", 1.0,
                                                                                             0.01)[0]
        run = lambda: sample(sampler, hole)  # noqa: E731
    else:
        operator = nodes["InverseOperatorDownsample"]().build(4, "bicubic")[0]
        measurement = nodes["InverseDegradeImage"]().degrade(image, operator, 0.01, 0)[0]
        empty = {"samples": torch.zeros_like(latent["samples"])}
        if "euler" in label:
            sampler = euler
        else:
            node = nodes[next(name for method, name in RESTORERS.items() if method in label)]
            settings = next((extra for tag, extra in ROW_SETTINGS.items() if label.endswith(tag)), {})
            sampler = node().get_sampler(vae, measurement, operator, **{**node_defaults(node), **settings})[0]
        run = lambda: sample(sampler, empty)  # noqa: E731
    nodes["SamplerCustom"]().sample(model, True, 1, 1.0, cond, cond, euler, sigmas[-2:], latent)  # load + warm up
    vae.decode(latent["samples"])

    def checked_run():
        assert torch.isfinite(run()["samples"]).all()
    measure(checked_run)


def main():
    engine = comfy_harness.boot(with_test_nodes=True)
    if "--measure" in sys.argv:
        measure_one(engine, *json.loads(sys.argv[sys.argv.index("--measure") + 1]))
        return
    gpu = torch.cuda.is_available()
    families = [a for i, a in enumerate(sys.argv) if i > 0 and sys.argv[i - 1] == "--family"] or ["sd15", "sdxl",
                                                                                                     "flux"]
    rows = [a for i, a in enumerate(sys.argv) if i > 0 and sys.argv[i - 1] == "--row"]  # label substrings
    labels = [label for label in LABELS if not rows or "euler" in label or any(row in label for row in rows)]
    steps = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else (20 if gpu else 8)
    device = torch.cuda.get_device_name() if gpu else f"CPU ({os.cpu_count()} cores)"
    print(f"engine: {engine.name} ({engine.commit}); {device}; {steps} steps; Flux: {FLUX_DEPTH[0]} double + "
          f"{FLUX_DEPTH[1]} single blocks (weights shared per kind)")
    print("| model | size | task: sampler | wall time (s) | time / euler | peak memory growth (MiB) | memory / euler |")
    print("|---|---|---|---|---|---|---|")
    for family in families:
        size = int(sys.argv[sys.argv.index("--size") + 1]) if "--size" in sys.argv else (1024 if gpu else
                                                                                          CPU_SIZES[family])
        baseline = {}
        for label in labels:
            seconds, grown = run_isolated(__file__, json.dumps([family, size, steps, label]), timeout=7200)
            task = label.split(":")[0]
            baseline.setdefault(task, (seconds, grown))
            base_seconds, base_grown = baseline[task]
            print(f"| {family} | {size}² | {label} | {seconds:.2f} | {seconds / base_seconds:.2f} | "
                  f"{grown / 2**20:.0f} | {grown / max(base_grown, 1):.2f} |", flush=True)


if __name__ == "__main__":
    main()
