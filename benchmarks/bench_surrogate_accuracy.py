"""How accurate a model of the decoder's Jacobian `fitted` needs, and how often it must be refitted, to reach
the exact steps on the testbed (docs/testbed.md).

The default restorer (DInG Restore, `fitted`, `frozen_proxy`, its other widgets at their defaults) runs on the
testbed's problems with its surrogate replaced by

    L_α = (1 − α)·D + α·K    (plus the same secant updates between refits),

D the unconstrained least-squares linear map latent → pixels fitted to 2·(latent size) random finite-difference
probes (the Jacobian up to the finite difference: affordable only at the testbed's 2×2 latents, 32 decodes per
refit), K the default 3×3 kernel fitted to the same probes. α = 1 is the default's model class, α = 0 the
Jacobian itself at each refit; in between the model errs along K's own error, scaled by α. `--refit-every`
sets how many decoded linearizations share one fit (the default 4). Each cell prints sliced W2 to the MCMC
reference, mean (worst draw), the data residual's range over draws, and the mean relative error
‖(L_α − D) v‖ / ‖D v‖ of the model right after its refits (random v); the shipped default runs beside it.

Run: .venv/bin/python benchmarks/bench_surrogate_accuracy.py --task inpaint --alpha 0 0.5 1 --refit-every 4 2
"""
import argparse
import contextlib
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "scripts"))
sys.path.insert(0, str(ROOT))
import bench_testbed  # noqa: E402
import comfy_harness  # noqa: E402

DEFAULT_KEY = "fitted_frozen"   # bench_testbed's row for the shipped default
ERROR_PROBES = 8                # random directions scoring each refit


def blended_model_class(kernel_class):
    """L_α = (1 − α)·D + α·K as a subclass of the pack's kernel model (`kernel_class`,
    decoder_surrogate.LocalLinearDecoder): its secant updates, and the secant terms of L v and Lᵀ p, are the
    kernel model's own; only the part they are added to is blended."""

    class BlendedJacobianModel(kernel_class):
        def __init__(self, channels, factor, alpha, errors):
            super().__init__(channels, factor)
            self.alpha, self.errors = alpha, errors
            self.dense = None            # [B, pixels, latents], float64
            self.latent_shape = self.pixel_shape = None
            self.error_generator = torch.Generator().manual_seed(1)

        def probes_needed(self, latent_shape) -> int:
            return 2 * math.prod(latent_shape[1:])

        def fit(self, directions, differences):
            count, batch = directions.shape[:2]
            self.latent_shape, self.pixel_shape = tuple(directions.shape[2:]), tuple(differences.shape[2:])
            inputs = directions.double().reshape(count, batch, -1)
            outputs = differences.double().reshape(count, batch, -1)
            gram = torch.einsum("pbi,pbj->bij", inputs, inputs)
            cross = torch.einsum("pbo,pbj->boj", outputs, inputs)
            self.dense = torch.linalg.solve(gram, cross.transpose(-1, -2)).transpose(-1, -2)
            super().fit(directions, differences)   # K, and drops the secant terms
            self._score(batch)

        def _score(self, batch):
            """The blend's relative error against D along random directions, right after a refit."""
            probes = torch.randn((ERROR_PROBES, batch, *self.latent_shape), generator=self.error_generator,
                                 dtype=torch.float64)
            errors = []
            for probe in probes:
                exact = self._dense_apply(probe)
                errors.append((self._kernel_apply(probe) - exact).flatten(1).norm(dim=1) / exact.flatten(1).norm(dim=1))
            self.errors.append(float(torch.stack(errors).mean()))

        def _dense_apply(self, latent):
            flat = torch.einsum("boi,bi->bo", self.dense, latent.double().flatten(1))
            return flat.view(latent.shape[0], *self.pixel_shape)

        def _kernel_apply(self, latent):
            dense = self._dense_apply(latent)
            if self.alpha == 0:
                return dense
            return (1 - self.alpha) * dense + self.alpha * super()._kernel_apply(latent)

        def _kernel_adjoint(self, pixels):
            flat = torch.einsum("boi,bo->bi", self.dense, pixels.double().flatten(1))
            dense = flat.view(pixels.shape[0], *self.latent_shape)
            if self.alpha == 0:
                return dense
            return (1 - self.alpha) * dense + self.alpha * super()._kernel_adjoint(pixels)

    return BlendedJacobianModel


@contextlib.contextmanager
def surrogate_setting(pack, alpha, refit_every, errors):
    """The pack's `fitted` observation with L_α as its model and `refit_every` as its refit interval."""
    module = pack.solvers.ding_restore
    kernel_class, observation_class = module.LocalLinearDecoder, module.FittedDecoderObservation

    class Refitted(observation_class):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.refit_every = refit_every

    blended_class = blended_model_class(kernel_class)
    module.LocalLinearDecoder = lambda channels, factor: blended_class(channels, factor, alpha, errors)
    module.FittedDecoderObservation = Refitted
    try:
        yield
    finally:
        module.LocalLinearDecoder, module.FittedDecoderObservation = kernel_class, observation_class


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", nargs="*", default=list(bench_testbed.TASKS), choices=bench_testbed.TASKS)
    parser.add_argument("--family", nargs="*", default=["eps", "flow"], choices=["eps", "flow"])
    parser.add_argument("--alpha", nargs="*", type=float, default=[0.0, 0.5, 1.0])
    parser.add_argument("--refit-every", nargs="*", type=int, default=[4])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--samples", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    engine = comfy_harness.boot(with_test_nodes=False)
    pack = comfy_harness.pack_modules(engine)
    vae = pack.testbed.latent_prior.testbed_vae()
    models = {family: pack.testbed.latent_prior.prior_model(family) for family in args.family}
    settings = [(alpha, refit) for refit in args.refit_every for alpha in args.alpha]
    print("| task | family | model | sliced W2 mean (worst draw) | data residual (draw range) | "
          "model error at the refits |")
    print("|---|---|---|---|---|---|", flush=True)
    for task in args.task:
        problems = bench_testbed.problems(pack, task, args.draws)
        references = [bench_testbed.reference_samples(pack, task, draw, problem, 32, 400)
                      for draw, problem in enumerate(problems)]
        for family in args.family:
            rows = [("the floor (reference run 2)", None, None), ("the default (3×3 kernel, refit every 4)", None, [])]
            rows += [(f"α = {alpha:g}, refit every {refit}", (alpha, refit), []) for alpha, refit in settings]
            for label, setting, errors in rows:
                scores = bench_testbed.Scores()
                for draw, (problem, refs) in enumerate(zip(problems, references)):
                    if errors is None:
                        scores.add(pack, problem, refs["second"][:args.samples], refs["first"])
                        continue
                    context = surrogate_setting(pack, *setting, errors) if setting else contextlib.nullcontext()
                    with context:
                        pixels = bench_testbed.restore(engine, pack, DEFAULT_KEY, vae, models[family], problem,
                                                       args.samples, draw)
                    scores.add(pack, problem, pixels, refs["first"])
                w2 = f"{sum(scores.w2) / len(scores.w2):.4f} ({max(scores.w2):.4f})"
                residual = f"{min(scores.residual):.2f}–{max(scores.residual):.2f}"
                error = f"{sum(errors) / len(errors):.2f}" if errors else ""
                print(f"| {task} | {family} | {label} | {w2} | {residual} | {error} |", flush=True)


if __name__ == "__main__":
    main()
