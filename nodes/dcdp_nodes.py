"""Decoupled refinement (DCDP): an all-in-one restoration node and a SAMPLER form."""
import logging

import torch

from ..solvers import dcdp
from . import checks, comfy_compat, input_specs
from .operator_nodes import OPERATOR
from .restoration import RestorationCall, RunReport, check_schedule, describe_fits, describe_run, restored_latent
from .vae_bridge import pixels_to_image

log = logging.getLogger("inverse_samplers")


def dcdp_options_inputs():
    return {
        "outer_iterations": ("INT", {"default": 10, "min": 1, "max": 500, "tooltip":
                             "Number of rounds (K in the paper by Li et al. 2024): each fits the image to the photo, "
                             "then lets the model clean it up (the network calls of one clean-up, see purification). "
                             "Default 10."}),
        "inner_steps": ("INT", {"default": 100, "min": 1, "max": 5000, "tooltip":
                        "Most iterations of each fit to the photo (exact-solver iterations, or momentum steps); a "
                        "fit stops earlier once it meets tolerance."}),
        "step_size": ("FLOAT", {"default": 0.1, "min": 0.0001, "max": 2.0, "step": 0.0001, "tooltip":
                      "Step size of the momentum fit (dc_solver momentum, or auto with a nonlinear operator), scaled "
                      "to the operator so it does not depend on image size. Lower it if results oscillate or blow up, "
                      "raise it if fits stop short. Default 0.1."}),
        "proximal_weight": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 100.0, "step": 0.01, "tooltip":
                            "How strongly each fit stays close to the model's last cleaned-up image: higher keeps "
                            "more of the model's picture, lower follows the photo more. 0.1 (default) was the closest "
                            "to the exact answer in the pack's tests at noise 0.025; 0 copies the photo's noise too "
                            "(only for noiseless photos, with skip_final_purification)."}),
        "start_strength": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                           "How much noise the first clean-up adds, as a share of the schedule (like denoise): "
                           "higher lets the model invent more detail, lower stays closer to the photo. 0.1 (default) "
                           "was the closest to the exact answer in the pack's tests; the paper (Li et al. 2024) uses "
                           "0.4-0.7."}),
        "end_strength": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                         "How much noise the last clean-up adds (0 = the schedule's smallest). At most "
                         "start_strength: the noise decays from start to end over the rounds; equal values clean up "
                         "at one fixed level."}),
        "purification": (list(dcdp.PURIFICATIONS), {"default": "ode", "tooltip":
                         "How the model cleans the image up each round. tweedie: a one-shot clean-up, 1 network call "
                         "per round (can look softer). ode (default): a short sampling run of purification_steps "
                         "calls (1-4 for LCM / Turbo / Lightning)."}),
        "purification_steps": ("INT", {"default": 4, "min": 1, "max": 50, "tooltip":
                               "Network calls of each ode clean-up (a short sampling run; ignored by tweedie, the "
                               "one-shot clean-up): 1-4 for few-step models (LCM, Turbo, Lightning). Default 4."}),
        "dc_solver": (list(dcdp.DC_SOLVERS), {"default": "auto", "tooltip":
                      "How each fit to the photo is solved. auto (default): the exact solver for blur, downsample, "
                      "masks and denoise, the nearest matching image for JPEG, momentum for other nonlinear "
                      "operators. cg: the exact solver (conjugate gradients), those operators only. momentum: the "
                      "step-by-step fitting of the paper (Li et al. 2024), any operator; stopping early keeps it from "
                      "copying noise."}),
        "skip_final_purification": ("BOOLEAN", {"default": False, "tooltip":
                                    "End on the last fit to the photo instead of a final clean-up by the model: the "
                                    "advice of the DCDP authors (Li et al. 2024) for noiseless photos only."}),
        "tolerance": ("FLOAT", {"default": 1e-3, "min": 0.0, "max": 1.0, "step": 0.0001, "tooltip":
                      "A fit stops once its remaining error has shrunk to this share of where it started (smaller = "
                      "more precise, slower; info reports the worst reached). 0 always runs all inner_steps."}),
        "tiled_vae": input_specs.tiled_vae(),
        "encoder_correction": input_specs.encoder_correction(),
    }


def fit_iteration_name(operator, options):
    return "CG iterations" if dcdp.uses_exact_fit(operator, options) else "momentum steps"


def run_dcdp(model, x, sigmas, extra_args, callback, vae, measurement, operator, options, report=None,
             tiled_vae="auto"):
    """Shared by both forms: returns (pixels in [−1, 1], last purified latent or None)."""
    check_schedule(sigmas, "every purification level of DCDP would collapse to the largest noise level (sigma_max), "
                   "discarding each fit", "e.g. BasicScheduler with 20 steps: the SIGMAS only place the purification "
                   "levels, the network calls are set by purification and purification_steps (1-4 for Turbo / LCM)")
    call = RestorationCall(model, x, extra_args, vae, measurement, operator, "DCDP", report, tiled_vae)
    log.info("DCDP (%s, %s): %d network calls, %s", operator.describe(), call.param.name,
             dcdp.network_calls(options, sigmas),
             describe_fits(options.outer_iterations, dcdp.uses_exact_fit(operator, options), options.inner_steps,
                           "momentum steps"))

    def progress(k, latent, x0, sigma):
        if callback is not None:  # progress over outer iterations, mapped onto the sampler's step count
            step = min(len(sigmas) - 2, (k + 1) * (len(sigmas) - 1) // options.outer_iterations - 1)
            callback({"x": latent, "i": step, "sigma": sigma, "sigma_hat": sigma, "denoised": x0})

    result = dcdp.sample_dcdp(call.denoise, call.codec.decode, call.codec.encode, operator, call.y, sigmas, call.param,
                              call.generator(), options, callback=progress,
                              check_interrupt=comfy_compat.check_interrupt, stats=call.report.solves)
    log.info("DCDP: %s; fits: %s", call.report.describe_work(),
             call.report.solves.describe(fit_iteration_name(operator, options)))
    return result, call.codec


@torch.no_grad()
def sample_dcdp_comfy(model, x, sigmas, extra_args=None, callback=None, disable=None, *, vae, measurement, operator,
                      options, report=None, tiled_vae="auto"):
    """KSAMPLER contract; the sigmas only supply the purification levels. Returns the last purified
    latent, or the encoding of the final fit when the final purification is skipped. A RunReport passed
    as `report` receives the run's calls, VAE passes, fits and the final image itself (the all-in-one
    node returns it, saving a VAE round trip)."""
    (pixels, latent), codec = run_dcdp(model, x, sigmas, extra_args, callback, vae, measurement, operator, options,
                                       report, tiled_vae)
    if report is not None:
        report.final_pixels = pixels
    return latent if latent is not None else codec.encode(pixels)


class DCDPSampler:
    DESCRIPTION = ("DCDP (Li et al. 2024, \"Decoupled Data Consistency with Diffusion Purification\") for "
                   "SamplerCustom: alternates a fit of the image to the photo with a clean-up by the model (the "
                   "paper's purification). The SIGMAS set the clean-up noise levels; the latent sets the output size. "
                   "Prefer the all-in-one node: it skips a final VAE round trip.")
    CATEGORY = "sampling/custom_sampling/samplers"
    RETURN_TYPES = ("SAMPLER",)
    RETURN_NAMES = ("sampler",)
    OUTPUT_TOOLTIPS = ("Connect to SamplerCustom's sampler input; the latent_image sets the restored size.",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": input_specs.model_sockets()["vae"], "measurement": input_specs.measurement(),
                             "operator": input_specs.operator(OPERATOR), **dcdp_options_inputs()}}

    def get_sampler(self, vae, measurement, operator, tiled_vae="auto", **options):
        checks.check_vae(vae)
        checks.check_image(measurement, "measurement")
        settings = dcdp.check_options(dcdp.DCDPOptions(**options))
        return (comfy_compat.ksampler(sample_dcdp_comfy, {
            "vae": vae, "measurement": measurement, "operator": operator, "options": settings,
            "tiled_vae": tiled_vae}),)


class DCDPRestore:
    DESCRIPTION = ("Restore a degraded image with DCDP (Li et al. 2024, \"Decoupled Data Consistency with Diffusion "
                   "Purification\"): rounds that fit the image to the photo, then let the model clean it up (lightly "
                   "re-noise and denoise) at a noise level that falls over the rounds. Few-step models (LCM, Turbo, "
                   "Lightning) clean up in 1-4 steps.")
    CATEGORY = "sampling/inverse"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("image", "info")
    OUTPUT_TOOLTIPS = ("The restored image, at the operator's input size.",
                       "Rounds, network calls and how far the fits got (their worst remaining error) "
                       "(connect Preview Any to read it).")
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **input_specs.model_sockets(), "measurement": input_specs.measurement(),
            "operator": input_specs.operator(OPERATOR),
            "seed": input_specs.seed(),
            "steps": input_specs.steps(30, 2, "Length of the noise schedule that start_strength and end_strength pick "
                                          "their levels from (a finer choice, not more network calls)."),
            "cfg": input_specs.cfg(1.0, "How strongly the prompt steers the result. 1.0 (default, no CFG): the model "
                               "alone supplies realistic detail; restoration rarely needs more."),
            "scheduler": input_specs.scheduler(),
            **dcdp_options_inputs()}}

    def restore(self, model, positive, negative, vae, measurement, operator, seed, steps, cfg, scheduler,
                tiled_vae="auto", **options):
        settings = dcdp.check_options(dcdp.DCDPOptions(**options))
        latent = restored_latent(model, vae, measurement, operator)
        sigmas = comfy_compat.compute_sigmas(model, scheduler, steps, 1.0)
        report = RunReport()
        sampler = comfy_compat.ksampler(sample_dcdp_comfy, {
            "vae": vae, "measurement": measurement, "operator": operator, "options": settings, "report": report,
            "tiled_vae": tiled_vae})
        comfy_compat.sample_custom(model, sampler, sigmas, positive, negative, cfg, latent, seed,
                                   start_noise=False)  # DCDP draws its own start
        info = (f"DCDP ({operator.describe()}): {settings.outer_iterations} rounds, "
                f"{describe_run(report, cfg, fit_iteration_name(operator, settings))}")
        return (pixels_to_image(report.final_pixels), info)


DCDP_NODES = {
    "InverseDCDPSampler": (DCDPSampler, "DCDP Sampler (decoupled refinement)"),
    "InverseDCDPRestore": (DCDPRestore, "DCDP Restore (all-in-one)"),
}
