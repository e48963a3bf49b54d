"""Decoupled refinement (DCDP): an all-in-one restoration node and a SAMPLER form."""
import logging

import comfy.samplers
import torch

from ..solvers import dcdp
from . import comfy_compat, inputs, sockets
from .operator_nodes import OPERATOR
from .restoration import (RestorationCall, RunReport, check_schedule, describe_fits, describe_run, restored_latent,
                          sample_restoration)
from .vae_bridge import pixels_to_image

log = logging.getLogger("inverse_samplers")


def dcdp_options_inputs():
    return {
        "outer_iterations": ("INT", {"default": 10, "min": 1, "max": 500, "tooltip": "K rounds of fit-then-purify."}),
        "inner_steps": ("INT", {"default": 100, "min": 1, "max": 5000, "tooltip":
                        "Most iterations of each fit (CG iterations or momentum steps); a fit stops earlier once it "
                        "meets tolerance."}),
        "step_size": ("FLOAT", {"default": 0.1, "min": 0.0001, "max": 2.0, "step": 0.0001, "tooltip":
                      "Fit step relative to 1/||A||^2 (momentum 0.9): independent of image size and operator scale."}),
        "proximal_weight": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 100.0, "step": 0.01, "tooltip":
                            "Pull each fit toward the last purified image (mu). 0.1 was closest to the posterior in "
                            "the pack's sweep at noise 0.025 (0..1 units); 0 fits noise (use it, with "
                            "skip_final_purification, only for noiseless measurements)."}),
        "start_strength": ("FLOAT", {"default": 0.1, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                           "Noise of the first purification, as a share of the schedule (like denoise). 0.1 was "
                           "closest to the posterior in the pack's sweep; the paper's 0.4-0.7 lets the model "
                           "invent more detail."}),
        "end_strength": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                         "Noise of the last purification (0 = the schedule's smallest). At most start_strength: the "
                         "noise decays over the rounds; equal values purify at one fixed level."}),
        "purification": (list(dcdp.PURIFICATIONS), {"default": "ode", "tooltip":
                         "tweedie: 1 network call per round. ode: purification_steps calls (1-4 for LCM/Turbo/Lightning)."}),
        "purification_steps": ("INT", {"default": 4, "min": 1, "max": 50, "tooltip":
                               "Network calls of each ode purification (ignored by tweedie): 1-4 for few-step models."}),
        "dc_solver": (list(dcdp.DC_SOLVERS), {"default": "auto", "tooltip":
                      "auto: the exact fit for linear operators (closed form or conjugate gradients), momentum for "
                      "nonlinear ones. cg: exact, linear operators only. momentum: the paper's gradient steps, any "
                      "operator (stopping early acts as a regulariser)."}),
        "skip_final_purification": ("BOOLEAN", {"default": False, "tooltip":
                                    "End on the last fit (the authors' advice for noiseless measurements)."}),
        "tolerance": ("FLOAT", {"default": 1e-3, "min": 0.0, "max": 1.0, "step": 0.0001, "tooltip":
                      "A fit stops once its gradient is this share of where it started (relative residual; info "
                      "reports the worst reached). 0 runs every inner step."}),
        "tiled_vae": sockets.tiled_vae(),
        "encoder_correction": sockets.encoder_correction(),
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
    DESCRIPTION = ("Decoupled refinement (DCDP) for SamplerCustom: alternates a pixel-space fit to the measurement "
                   "with purification by the model. The SIGMAS set the purification levels; the latent sets the output "
                   "size. Prefer the all-in-one node: it skips a final VAE round trip.")
    CATEGORY = "sampling/custom_sampling/samplers"
    RETURN_TYPES = ("SAMPLER",)
    RETURN_NAMES = ("sampler",)
    OUTPUT_TOOLTIPS = ("Connect to SamplerCustom's sampler input; the latent_image sets the restored size.",)
    FUNCTION = "get_sampler"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae": sockets.model_sockets()["vae"], "measurement": sockets.measurement(),
                             "operator": sockets.operator(OPERATOR), **dcdp_options_inputs()}}

    def get_sampler(self, vae, measurement, operator, tiled_vae="auto", **options):
        inputs.check_vae(vae)
        inputs.check_image(measurement, "measurement")
        settings = dcdp.check_options(dcdp.DCDPOptions(**options))
        return (comfy.samplers.KSAMPLER(sample_dcdp_comfy, extra_options={
            "vae": vae, "measurement": measurement, "operator": operator, "options": settings,
            "tiled_vae": tiled_vae}),)


class DCDPRestore:
    DESCRIPTION = ("Restore a degraded image with decoupled refinement (DCDP): K rounds of pixel-space data "
                   "consistency and diffusion purification at decaying noise. Few-step models (LCM, Turbo, "
                   "Lightning) purify in 1-4 steps.")
    CATEGORY = "sampling/inverse"
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("image", "info")
    OUTPUT_TOOLTIPS = ("The restored image, at the operator's input size.",
                       "Rounds, network calls and how far the fits got (relative residual) "
                       "(connect Preview Any to read it).")
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            **sockets.model_sockets(), "measurement": sockets.measurement(), "operator": sockets.operator(OPERATOR),
            "seed": sockets.seed(),
            "steps": sockets.steps(30, 2, "Length of the schedule the start and end strengths index."),
            "cfg": sockets.cfg(1.0, "1.0 (no CFG) treats the model as a plain prior; restoration rarely wants more."),
            "scheduler": sockets.scheduler(),
            **dcdp_options_inputs()}}

    def restore(self, model, positive, negative, vae, measurement, operator, seed, steps, cfg, scheduler,
                tiled_vae="auto", **options):
        settings = dcdp.check_options(dcdp.DCDPOptions(**options))
        latent = restored_latent(model, vae, measurement, operator)
        sigmas = comfy_compat.compute_sigmas(model, scheduler, steps, 1.0)
        report = RunReport()
        sampler = comfy.samplers.KSAMPLER(sample_dcdp_comfy, extra_options={
            "vae": vae, "measurement": measurement, "operator": operator, "options": settings, "report": report,
            "tiled_vae": tiled_vae})
        sample_restoration(model, sampler, sigmas, positive, negative, cfg, latent, seed)
        info = (f"DCDP ({operator.describe()}): {settings.outer_iterations} rounds, "
                f"{describe_run(report, cfg, fit_iteration_name(operator, settings))}")
        return (pixels_to_image(report.final_pixels), info)


DCDP_NODES = {
    "InverseDCDPSampler": (DCDPSampler, "DCDP Sampler (decoupled refinement)"),
    "InverseDCDPRestore": (DCDPRestore, "DCDP Restore (all-in-one)"),
}
