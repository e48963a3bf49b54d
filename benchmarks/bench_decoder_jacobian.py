"""How well can a local linear model stand in for a trained decoder's Jacobian? (docs/testbed.md)

`fitted` (solvers/decoder_surrogate.py) models the decoder's Jacobian J as one k×k latent-cell kernel shared by
every cell. This measures, at held-out latents of the testbed VAE (64×64 px patches, 8×8 latent cells, the
exact J by forward-mode differentiation), the best any model of a few such classes could do — each fitted to
J itself, so the errors are lower bounds for that class:

* the share of J's energy outside each cell's k×k neighbourhood (what any k×k model misses),
* the best shared k×k kernel (the cells' mean block): ‖J − L‖ / ‖J‖, the energy outside included,
* the shared kernel plus a per-cell scalar gain, and plus the best rank-r per-cell variation (r basis
  kernels, each cell its own mixture of them);
* and whether the variation can be predicted from the latent: each cell's block from the other 15 cells'
  (leave one out), by their mean (the shared kernel) and by a map linear in the cell's own latent values
  (five basis kernels weighted by 1 and the cell's 4 channels), fitted to those cells' blocks.

Every error is over the same central 4×4 cells (those whose 5×5 neighbourhood lies inside the patch), in
Frobenius norm relative to those cells' whole rows of J.

Run: .venv/bin/python benchmarks/bench_decoder_jacobian.py [--points 4]
"""
import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "scripts"))
import comfy_harness  # noqa: E402

PATCH, FACTOR, CHANNELS = 64, 8, 4
CELLS = PATCH // FACTOR
CENTRAL = range(2, CELLS - 2)          # cells whose 5×5 neighbourhood is inside the 8×8 grid
RANKS = (4, 8)


def decoder_jacobian(testbed, vae, point):
    """J at one latent [C, h, w], as [cell_i, cell_j, 3·f·f outputs, C, h, w] (float64)."""
    dim = point.numel()
    columns = []
    for chunk in torch.eye(dim).reshape(dim, *point.shape).split(64):
        start = point[None].expand(len(chunk), -1, -1, -1).contiguous()
        with torch.no_grad(), torch.autograd.forward_ad.dual_level():
            out = testbed.vae.decode_raw(vae, torch.autograd.forward_ad.make_dual(start, chunk))
            columns.append(torch.autograd.forward_ad.unpack_dual(out).tangent)
    jacobian = torch.cat(columns).double().reshape(CHANNELS, CELLS, CELLS, 3, CELLS, FACTOR, CELLS, FACTOR)
    return jacobian.permute(4, 6, 3, 5, 7, 0, 1, 2).reshape(CELLS, CELLS, 3 * FACTOR * FACTOR, CHANNELS, CELLS, CELLS)


def class_errors(jacobian, point, kernel_size):
    """Relative errors of the best models of each class with a kernel_size neighbourhood (point: the latent)."""
    radius = kernel_size // 2
    blocks, total, own_latent = [], 0.0, []
    for i in CENTRAL:
        for j in CENTRAL:
            rows = jacobian[i, j]
            total += float(rows.square().sum())
            blocks.append(rows[:, :, i - radius:i + radius + 1, j - radius:j + radius + 1].reshape(-1))
            own_latent.append(point[:, i, j].double())
    blocks = torch.stack(blocks)                                       # [cells, outputs·C·k²]
    outside = total - float(blocks.square().sum())
    shared = blocks.mean(0, keepdim=True)
    variation = blocks - shared
    gains = blocks @ shared[0] / (shared[0] @ shared[0])
    singular = torch.linalg.svdvals(variation).square()
    relative = lambda missed: (max(missed, 0.0) / total) ** 0.5
    errors = {"outside": outside / total, "shared": relative(outside + float(variation.square().sum())),
              "gain": relative(outside + float((blocks - gains[:, None] * shared).square().sum()))}
    for rank in RANKS:
        errors[f"rank {rank}"] = relative(outside + float(singular[rank:].sum()))
    features = torch.stack(own_latent)
    for name, columns in (("held-out shared", features[:, :0]), ("held-out own latent", features)):
        errors[name] = relative(outside + float((blocks - leave_one_out(columns, blocks)).square().sum()))
    return errors


def leave_one_out(features, blocks):
    """Each cell's block predicted by least squares on [1, features] from the other cells."""
    design = torch.cat([torch.ones(len(blocks), 1, dtype=blocks.dtype), features], 1)
    predicted = torch.empty_like(blocks)
    for cell in range(len(blocks)):
        others = [c for c in range(len(blocks)) if c != cell]
        predicted[cell] = design[cell] @ torch.linalg.lstsq(design[others], blocks[others]).solution
    return predicted


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=4, help="held-out latents to measure at")
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = comfy_harness.boot(with_test_nodes=False)
    testbed = comfy_harness.pack_modules(engine).testbed
    vae = testbed.latent_prior.testbed_vae()
    latents = testbed.vae.posterior_mode(vae, testbed.photos.held_out_patches(PATCH))
    picks = torch.randperm(len(latents), generator=torch.Generator().manual_seed(0))[:args.points]
    print(f"decoder Jacobian of the testbed VAE at {args.points} held-out {PATCH}x{PATCH} latents, the central "
          f"{len(CENTRAL) ** 2} cells; ||J - L|| / ||J|| of the best L of each class (lower bounds), and of two "
          "predictions of each cell from the others (held out)")
    print("| latent | kernel | energy outside | shared kernel (`fitted`'s class) | + per-cell gain | "
          + " | ".join(f"+ rank-{r} per-cell variation" for r in RANKS)
          + " | shared, held-out cell | linear in the cell's latent, held-out cell |")
    print("|---|---|---|---|---|" + "---|" * (len(RANKS) + 2))
    for index in picks.tolist():
        jacobian = decoder_jacobian(testbed, vae, latents[index])
        for kernel_size in (3, 5):
            errors = class_errors(jacobian, latents[index], kernel_size)
            cells = [errors["outside"], errors["shared"], errors["gain"], *(errors[f"rank {r}"] for r in RANKS),
                     errors["held-out shared"], errors["held-out own latent"]]
            print(f"| {index} | {kernel_size}x{kernel_size} | " + " | ".join(f"{e:.3f}" for e in cells) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
