"""DInG restoration (any linear operator) as a SAMPLER and as an all-in-one node."""
import logging

import torch

from ..solvers import ding, ding_restore
from . import checks, comfy_compat, input_specs, vae_bridge
from .ding_nodes import ding_options_inputs, variant_input
from .operator_nodes import OPERATOR
from .restoration import RestorationCall, RunReport, describe_run, restored_latent

log = logging.getLogger("inverse_samplers")


def ding_restore_options_inputs():
    ding_options = {name: spec for name, spec in ding_options_inputs().items() if name != "obs_std"}
    ding_options["variant"] = variant_input("frozen_proxy", {
        "frozen_proxy": "as close to the right answer as ding on the pack's exact tests, within 10%, and 1.0-1.3x "
                        "ding's distance through its trained VAE, for about 2x plain sampling instead of 3x (SDXL at "
                        "1024²)",
        "delayed": "1.1-1.4x further than ding on motion blur"})
    return {
        "measurement_noise": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 0.5, "step": 0.001, "tooltip":
                              "How noisy the degraded photo is (noise level in pixel units, 0..1): measure it with "
                              "Estimate Noise Level. Too low copies the photo's grain into the result, too high lets "
                              "the result drift from the photo; values below 0.0005 count as 0.0005."}),
        **ding_options,
        "latent_solver": (list(ding_restore.LATENT_SOLVERS), {"default": "fitted", "tooltip":
                          "How each step's match to the photo is carried through the VAE. fitted (default): 1 "
                          "decode per step, no encode, no gradients: fits a small linear model of the decoder as "
                          "it goes; closer to linearized than pixel on every problem in the pack's testbed (with "
                          "final_fit exact about as close as linearized, holes excepted). pixel: 2 decodes + 2 "
                          "encodes per step, no gradients; with a real VAE it matches the photo but lands further "
                          "from the right answer, and misses the photo around holes. linearized: follows the VAE's "
                          "decoder exactly at each step but is much slower and needs far more memory (seconds per "
                          "step on large images)."}),
        "solver_iterations": ("INT", {"default": 200, "min": 1, "max": 1000, "tooltip":
                              "Most iterations of the inner solver in each step (used by every operator with "
                              "latent_solver fitted or linearized, and by blur and bicubic super-resolution with "
                              "pixel, which solves masks, box downsampling and denoising in one go). More only "
                              "costs time (no VAE pass); 200 was enough in the pack's tests."}),
        "solver_tolerance": ("FLOAT", {"default": 1e-4, "min": 1e-8, "max": 0.1, "step": 1e-5, "tooltip":
                             "How precisely each inner solve must finish before it stops (smaller = more precise, "
                             "slower); the info output reports the worst reached. The default 1e-4 rarely needs "
                             "changing."}),
        "tiled_vae": input_specs.tiled_vae(),
        "final_fit": (list(FINAL_FITS), {"default": "approximate", "tooltip":
                      "How the last step, which decides the output, matches the photo with latent_solver pixel or "
                      "fitted. approximate (default): that solver's own step, no gradients at all. exact: through "
                      "the VAE decoder's own derivatives, once, at the end: with a trained VAE it brings fitted "
                      "to about linearized's closeness except around holes, and pixel 2-4 times closer to the "
                      "right answer (pack's testbed), for 10-30 extra decoder passes and the memory of a backward "
                      "pass through the decoder (too much for very large images)."}),
        "exact_below_noise": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.1, "tooltip":
                              "With latent_solver pixel or fitted: the steps whose noise level is below this also "
                              "match the photo through the VAE decoder's derivatives (and so does the last one, "
                              "whatever final_fit says). 0 (default): none. In the pack's testbed 3 (about the last "
                              "two thirds of the steps) brought pixel as close as linearized on every problem, holes "
                              "included, for about a third of its decoder derivatives, and 1 on blur, "
                              "super-resolution and denoising. The level is the noise-to-signal "
                              "ratio: the schedule's own numbers on SD1.5 / SDXL; on SD3 and Flux a schedule value s "
                              "means s/(1-s)."}),
        "predict_above_noise": ("FLOAT", {"default": 3.0, "min": 0.0, "max": 100.0, "step": 0.1, "tooltip":
                                "With latent_solver fitted: the steps whose noise level is above this skip the "
                                "VAE decode and predict the decoded image from the fitted model, since the photo "
                                "weighs little there. 3 (default): the first 5 to 8 of 20 steps, about 1 decode "
                                "per step in all; 0: every step decodes (about 1.3 per step). Same scale as "
                                "exact_below_noise."}),
        "decode_every": ("INT", {"default": 1, "min": 1, "max": 10, "tooltip":
                         "With latent_solver fitted: of the steps below predict_above_noise, only every n-th "
                         "decodes (the first one and the last step always do); the others predict the decoded "
                         "image from the fitted model. 1 (default): every one decodes. 2: about half the decodes, "
                         "for large images where the VAE dominates (SDXL at 1024²: about 2.6x plain sampling "
                         "instead of 3x), for 1.04-1.44x the distance to the right answer on deblurring, "
                         "super-resolution and denoising in the pack's testbed, and up to 2x around holes."}),
    }


FINAL_FITS = ("approximate", "exact")


def exact_final_fit(final_fit, latent_solver):
    """Whether the last step of a pixel or fitted run goes through the decoder's derivatives."""
    if final_fit not in FINAL_FITS:
        raise ValueError(f"final_fit must be one of {FINAL_FITS}, got {final_fit!r}")
    return latent_solver in ding_restore.APPROXIMATE_SOLVERS and final_fit == "exact"


def exact_steps(latent_solver, final_fit, exact_below_noise):
    """(exact final fit, noise level below which the transitions are exact) of a run: the pixel and fitted
    solvers' options; (False, 0) for linearized, whose every step already goes through the decoder's
    derivatives."""
    return (exact_final_fit(final_fit, latent_solver),
            exact_below_noise if latent_solver in ding_restore.APPROXIMATE_SOLVERS else 0.0)


def predicted_steps(latent_solver, predict_above_noise, decode_every):
    """(noise level above which a run's steps predict the decoded image, n: below it every n-th step decodes)
    (fitted only; (0, 1) otherwise: every step decodes)."""
    return (predict_above_noise, decode_every) if latent_solver == "fitted" else (0.0, 1)


def describe_solver(latent_solver, exact_final, exact_below, predict_above, decode_every):
    text = latent_solver + (f", predicted above noise {predict_above:g}" if predict_above > 0 else "")
    text += f", 1 in {decode_every} steps decoded below" if decode_every > 1 else ""
    if exact_below > 0:
        return text + f", exact below noise {exact_below:g} and final fit"
    return text + (", exact final fit" if exact_final else "")


class _Decoder(torch.nn.Module):
    def __init__(self, autoencoder):
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, latent):
        return self.autoencoder.decode(latent)


def differentiable_decoder(vae, latent_format, device):
    """Model-space latent → pixels in [−1, 1] through the VAE's own decoder module, unclamped, so that
    autograd can take vector-Jacobian products through it (never through the denoiser).

    Weights loaded inside ComfyUI's executor are inference tensors, which autograd may not save; the
    decoder runs on ordinary copies of them (torch.func.functional_call), the VAE itself untouched. The
    encoder's weights (SD-style `encoder.` / `quant_conv.`, never used by decode) are not copied."""
    decoder = _Decoder(vae.first_stage_model)
    encoder_only = ("autoencoder.encoder.", "autoencoder.quant_conv.")
    with torch.inference_mode(False):
        weights = {name: tensor.clone() for name, tensor in [*decoder.named_parameters(), *decoder.named_buffers()]
                   if not name.startswith(encoder_only)}

    def decode(latent):
        raw = latent_format.process_out(latent).to(vae.vae_dtype).to(vae.device)
        return torch.func.functional_call(decoder, weights, (raw,)).float().to(device)
    return decode


@torch.no_grad()  # the linearized solver enables autograd for the decoder alone
def sample_ding_restore_comfy(model, x, sigmas, extra_args=None, callback=None, disable=None, *, vae, measurement,
                              operator, measurement_noise=0.01, variant="frozen_proxy", eta_schedule="fm_square",
                              eta_scale=1.0, latent_solver="fitted", solver_iterations=200, solver_tolerance=1e-4,
                              tiled_vae="auto", final_fit="approximate", exact_below_noise=0.0, report=None,
                              exact_every=1, predict_above_noise=3.0, decode_every=1):
    """KSAMPLER contract: x is ComfyUI's noised start; the latent's size is the restored image's.
    A RunReport passed as `report` receives the run's calls, VAE passes and solves. exact_every > 1
    (no widget: measured no better than fewer steps, docs/benchmarks.md) conditions only every n-th step."""
    call = RestorationCall(model, x, extra_args, vae, measurement, operator, "DInG restore", report, tiled_vae)
    base_model = model.inner_model.inner_model
    options = ding_restore.SolveOptions(tolerance=solver_tolerance, max_iterations=solver_iterations)
    exact_final, exact_below = exact_steps(latent_solver, final_fit, exact_below_noise)
    predict_above, decode_every = predicted_steps(latent_solver, predict_above_noise, decode_every)
    needs_derivatives = latent_solver == "linearized" or exact_final or exact_below > 0
    differentiable = differentiable_decoder(vae, base_model.latent_format, x.device) if needs_derivatives else None
    observation = ding_restore.latent_observation(
        latent_solver, operator, call.y, 2.0 * measurement_noise, call.codec.decode, call.codec.encode,
        call.codec.decode_unclamped, differentiable, options, comfy_compat.check_interrupt, exact_final=exact_final,
        exact_below=exact_below, predict_above=predict_above, decode_every=decode_every)
    call.report.settings = describe_solver(latent_solver, exact_final, exact_below, predict_above, decode_every)
    log.info("DInG restore (%s, %s, %s): %d network calls for %d steps", operator.describe(),
             call.report.settings, call.param.name, ding.network_calls(sigmas, variant, exact_every),
             len(sigmas) - 1)

    def progress(i, state, x0, sigma):
        if callback is not None:
            callback({"x": state, "i": i, "sigma": sigmas[i], "sigma_hat": sigmas[i], "denoised": x0})

    result = ding.sample_posterior(call.denoise, x, sigmas, observation, call.param, call.generator(),
                                   eta_schedule=eta_schedule, eta_scale=eta_scale, variant=variant,
                                   exact_every=exact_every, callback=progress,
                                   check_interrupt=comfy_compat.check_interrupt)
    passes = getattr(observation, "decoder_passes", {})
    call.report.decodes += passes.get("decodes", 0)
    call.report.decoder_jvps += passes.get("jvps", 0)
    call.report.decoder_vjps += passes.get("vjps", 0)
    call.report.solves = observation.stats
    log.info("DInG restore: %s; %s", call.report.describe_work(), observation.stats.describe())
    return result.to(x.dtype)


class DInGRestoreSampler:
    DESCRIPTION = ("DInG restoration sampler for SamplerCustom / SamplerCustomAdvanced: the pack's extension of the "
                   "DInG inpainting step (Moufad et al. 2026) to deblurring, super-resolution, denoising and "
                   "inpainting. Every step takes the photo into account exactly (a direct solve, no approximation), "
                   "with no gradient through the model. The latent sets the output size (the restored image's, "
                   "e.g. EmptyLatentImage); add noise on. 1 network call per step (variant ding: 2).")
    CATEGORY = "sampling/custom_sampling/samplers"
    RETURN_TYPES = ("SAMPLER",)
    RETURN_NAMES = ("sampler",)
    OUTPUT_TOOLTIPS = ("Plug into SamplerCustom / SamplerCustomAdvanced.",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": ("VAE", {"tooltip": "The checkpoint's VAE: the operator acts on decoded pixels."}),
                             "measurement": input_specs.measurement(), "operator": input_specs.operator(OPERATOR),
                             **ding_restore_options_inputs()}}

    def get_sampler(self, vae, measurement, operator, **options):
        checks.check_vae(vae)
        checks.check_image(measurement, "measurement")
        ding_restore.require_linear(operator)
        return (comfy_compat.ksampler(sample_ding_restore_comfy, {
            "vae": vae, "measurement": measurement, "operator": operator, **options}),)


class DInGRestore:
    DESCRIPTION = ("Restore a degraded photo with DInG on any checkpoint: deblurring (Gaussian, motion, a kernel), "
                   "super-resolution, denoising, inpainting. The pack extends the DInG inpainting step (Moufad et al. "
                   "2026) to these operators: every step takes the photo into account exactly (a direct solve, no "
                   "approximation), with no gradient through the model. Output size = the operator's input size.")
    CATEGORY = "sampling/inverse"
    RETURN_TYPES = ("IMAGE", "LATENT", "STRING")
    RETURN_NAMES = ("image", "latent", "info")
    OUTPUT_TOOLTIPS = ("The restored image: one of many plausible restorations (another seed gives another).",
                       "Its latent.",
                       "Steps, network calls and how precisely the inner solver finished (connect Preview Any to "
                       "read it).")
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **input_specs.model_sockets(), "measurement": input_specs.measurement(),
            "operator": input_specs.operator(OPERATOR),
            "seed": input_specs.seed(),
            "steps": input_specs.steps(20, 1, "Sampling steps; each costs 1 network call (variant ding: 2)."),
            "cfg": input_specs.cfg(1.0, "How strongly the prompt steers the result. 1.0 (default, no CFG): the model "
                               "alone supplies realistic detail; above 1 the prompt steers harder and each call costs "
                               "two model passes."),
            "scheduler": input_specs.scheduler(),
            **ding_restore_options_inputs()}}

    def restore(self, model, positive, negative, vae, measurement, operator, seed, steps, cfg, scheduler, **options):
        ding_restore.require_linear(operator)
        latent = restored_latent(model, vae, measurement, operator)
        sigmas = comfy_compat.compute_sigmas(model, scheduler, steps, 1.0)
        report = RunReport()
        sampler = comfy_compat.ksampler(sample_ding_restore_comfy, {
            "vae": vae, "measurement": measurement, "operator": operator, "report": report, **options})
        samples = comfy_compat.sample_custom(model, sampler, sigmas, positive, negative, cfg, latent, seed)
        image = vae_bridge.decode(vae, samples, options.get("tiled_vae", "auto"))
        report.decodes += 1
        info = (f"DInG restore ({operator.describe()}, {report.settings}): "
                f"{len(sigmas) - 1} steps, {describe_run(report, cfg)}")
        return (image, {"samples": samples}, info)


DING_RESTORE_NODES = {
    "InverseDInGRestoreSampler": (DInGRestoreSampler, "DInG Restore Sampler (any linear operator)"),
    "InverseDInGRestore": (DInGRestore, "DInG Restore (all-in-one)"),
}
