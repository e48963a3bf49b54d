"""JPEG artefact removal on the demo faces: Spin and DCDP at their node defaults against the JPEG file itself.

The face prior (an exact model of 25x25 px faces, no download) and 4 held-out faces saved as JPEGs at each
quality; per restorer 4 seeds. Scores: PSNR against the true face of one sample and of the mean of the 4
(a posterior sample sits further from the truth than the posterior mean, about 3 dB for a Gaussian), the
RMS difference between the JPEG of the restoration and the file (0..1 units: 0 = consistent with the file),
and blockiness: the mean jump between neighbouring pixels across 8-px block borders over the mean jump
elsewhere (about 0.7 for the true faces, above 1 where JPEG blocks show).
Run: .venv/bin/python benchmarks/bench_jpeg.py [--quality 5 10 20] [--seeds 4]
"""
import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import comfy_harness  # noqa: E402
from oracle_problems import blockiness, image_psnr, jpeg_file_residual, node_defaults  # noqa: E402

RESTORERS = {"DCDP, ending on the fit (the workflow's setting)": ("InverseDCDPRestore",
                                                                  {"skip_final_purification": True}),
             "DCDP (node defaults)": ("InverseDCDPRestore", {}),
             "DCDP, gradient fits (dc_solver momentum), ending on the fit": (
                 "InverseDCDPRestore", {"skip_final_purification": True, "dc_solver": "momentum"}),
             "Spin (node defaults)": ("InverseSpinRestore", {})}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quality", type=int, nargs="*", default=[5, 10, 20])
    parser.add_argument("--seeds", type=int, default=4)
    args = parser.parse_args()
    engine = comfy_harness.boot(with_test_nodes=False)
    model, vae, faces, _, cond, _ = engine.nodes["InverseFacePriorLoader"]().load("eps", 4)
    print("| quality | image | PSNR, one sample (dB) | PSNR, mean of samples (dB) | JPEG(image) − file, RMS | "
          "blockiness |")
    print("|---|---|---|---|---|---|")
    print(f"| | the true faces | | | | {blockiness(faces):.2f} |")
    for quality in args.quality:
        operator = engine.nodes["InverseOperatorJPEG"]().build(quality, True, "straight-through")[0]
        jpeg = engine.nodes["InverseDegradeImage"]().degrade(faces, operator, 0.0, 0)[0]
        print(f"| {quality} | the JPEG file | {image_psnr(jpeg, faces):.2f} | | 0 | {blockiness(jpeg):.2f} |", flush=True)
        for label, (node_id, overrides) in RESTORERS.items():
            node = engine.nodes[node_id]
            samples = [getattr(node(), node.FUNCTION)(
                model=model, positive=cond, negative=cond, vae=vae, measurement=jpeg, operator=operator,
                **dict(node_defaults(node), seed=seed, **overrides))[0] for seed in range(args.seeds)]
            residual = max(jpeg_file_residual(operator, sample, jpeg) for sample in samples)
            print(f"| {quality} | {label} | {image_psnr(samples[0], faces):.2f} | "
                  f"{image_psnr(torch.stack(samples).mean(0), faces):.2f} | {residual:.4f} | "
                  f"{blockiness(samples[0]):.2f} |", flush=True)


if __name__ == "__main__":
    main()
