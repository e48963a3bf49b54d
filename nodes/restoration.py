"""What every sampler of the pack takes from ComfyUI's KSAMPLER call, written once."""
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F

from ..solvers.linear_gaussian import SolveStats
from . import checks, comfy_compat
from .vae_bridge import LatentCodec, image_to_pixels


@dataclass
class RunReport:
    """What one sampler run did, carried out of the KSAMPLER for the node's `info` and the log: network
    calls (a call is two model passes under CFG), VAE passes, the solves and fits."""
    network_calls: int = 0
    decodes: int = 0
    encodes: int = 0
    decoder_jvps: int = 0      # Jacobian-vector products through the decoder (the linearized solver)
    decoder_vjps: int = 0      # vector-Jacobian products through the decoder (the linearized solver)
    solves: SolveStats = field(default_factory=SolveStats)
    settings: str = ""         # what the run was set to do, as its log names it (DInG Restore: the latent solver)
    final_pixels: Optional[torch.Tensor] = None  # DCDP's final fit, which its all-in-one node returns as is

    @property
    def vae_passes(self) -> int:
        return self.decodes + self.encodes + self.decoder_jvps + self.decoder_vjps

    def describe_work(self) -> str:
        parts = [f"{self.decodes} decodes", f"{self.encodes} encodes"]
        parts += [f"{n} decoder {name}s" for n, name in ((self.decoder_jvps, "JVP"), (self.decoder_vjps, "VJP")) if n]
        return f"{self.network_calls} network calls, {self.vae_passes} VAE passes ({', '.join(parts)})"


def checked_denoiser(model, extra_args, x, who, report=None):
    """D(x, σ) → x̂0 through ComfyUI's wrapped model (CFG, patches), with ComfyUI's own mask
    blending switched off, failing clearly on NaN; each call counted in `report`."""
    extra_args = dict(extra_args or {}, denoise_mask=None)
    sigma_in = x.new_ones([x.shape[0]])

    def denoise(state, sigma):
        if report is not None:
            report.network_calls += 1
        out = model(state, sigma * sigma_in, **extra_args)
        if not torch.isfinite(out).all():
            raise ValueError(f"{who}: model output at sigma={sigma:.4g} contains NaN or infinite values "
                             "(try a float32 model or VAE, or check the upstream nodes)")
        return out
    return denoise


def check_schedule(sigmas, consequence, advice):
    """The SAMPLER forms place their noise levels on the SIGMAS: a 1-step schedule leaves only sigma_max."""
    steps = len(sigmas) - 1
    if steps < 2:
        raise ValueError(f"sigmas: the schedule has {steps} step{'' if steps == 1 else 's'}, so {consequence}. "
                         f"Connect a schedule of at least 2 steps; {advice}")


class RestorationCall:
    """A restoration sampler's view of one KSAMPLER call: the parameterisation, the seed, the pixel
    measurement y checked against the operator and the output size, the VAE codec, the denoiser."""

    def __init__(self, model, x, extra_args, vae, measurement, operator, who, report=None, tiled_vae="auto"):
        self.report = RunReport() if report is None else report
        checks.check_vae(vae)
        base_model = model.inner_model.inner_model
        self.param = comfy_compat.parameterisation_of(base_model.model_sampling)
        checks.check_vae_fits_model(vae, base_model.latent_format.latent_channels)
        scale = checks.vae_scale(vae)
        checks.check_latent_fits_vae(x.shape[2], x.shape[3], scale)
        checks.check_latent_fits_model(base_model, x.shape[2], x.shape[3], scale, "latent_image",
                                       "make the latent (the restored image) that size")
        self.seed = int((extra_args or {}).get("seed") or 0)
        patcher = model.inner_model.model_patcher
        self.codec = LatentCodec(vae, base_model.latent_format, patcher, x.device, self.seed, self.report, tiled_vae)
        comfy_compat.load_models([patcher, vae.patcher])
        self.y = operator.measurement_from_pixels(measurement_pixels(measurement, x.shape[0], x.device))
        check_measurement(operator, self.y, (x.shape[0], 3, x.shape[2] * scale, x.shape[3] * scale))
        check_inpainting_model_mask(model, operator, x)
        self.denoise = checked_denoiser(model, extra_args, x, who, self.report)

    def generator(self):
        return solver_generator(self.seed)


SEED_RANGE = 2 ** 64  # the seed widgets span 0 .. 2⁶⁴ − 1, as ComfyUI's own


def solver_generator(seed):
    """The solver's own draws, seeded with seed + 1 (the seed itself made ComfyUI's start noise), wrapped
    into the 64 bits a torch.Generator takes, so the largest seed a widget allows works too."""
    return torch.Generator().manual_seed((int(seed) + 1) % SEED_RANGE)


def describe_run(report, cfg, iteration_name="CG iterations"):
    """The all-in-one nodes' account of a run: calls (model passes under CFG), VAE passes, solves."""
    passes = f" = {2 * report.network_calls} model passes with CFG" if cfg != 1.0 else ""
    return f"{report.describe_work()}{passes}; {report.solves.describe(iteration_name)}"


def describe_fits(count, exact, max_steps, step_name):
    """The log's account of a run's pixel fits: exact solves stop at their tolerance, gradient fits at a cap."""
    return (f"{count} exact pixel fits (closed form or CG)" if exact
            else f"{count} pixel fits of at most {max_steps} {step_name}")


def measurement_pixels(measurement, batch, device):
    measurement = checks.check_image(measurement, "measurement")
    if measurement.shape[0] not in (1, batch):
        raise ValueError(f"measurement: batch of {measurement.shape[0]} images for a latent batch of {batch}")
    checks.warn_if_out_of_range(measurement[..., :3], "measurement")
    return image_to_pixels(measurement, device).expand(batch, -1, -1, -1)


def check_inpainting_model_mask(model, operator, x):
    """An inpainting model (InpaintModelConditioning) restoring through an inpainting operator must be shown
    the operator's hole."""
    concat_masks = comfy_compat.conditioned_concat_masks(model)
    hidden = operator.hidden_pixels()
    if concat_masks and hidden is not None:
        hole = F.interpolate(hidden.to(x.device, torch.float32), size=tuple(x.shape[-2:]), mode="bilinear")
        checks.check_concat_masks_agree(concat_masks, hole, "the inpainting operator's mask",
                                        "or the same mask to the operator")


def check_measurement(operator, y, pixel_shape):
    operator.check_fits(pixel_shape, "latent_image (decoded size)")
    expected = operator.measurement_shape(pixel_shape)
    if tuple(y.shape[-2:]) != tuple(expected[-2:]):
        raise ValueError(
            f"measurement: size {y.shape[-1]}x{y.shape[-2]} does not fit {operator.describe()} of the model's "
            f"{pixel_shape[-1]}x{pixel_shape[-2]} output (expected {expected[-1]}x{expected[-2]}); "
            "make the latent the size of the restored image")


def restored_latent(model, vae, measurement, operator):
    """The all-in-one nodes' empty latent at the size of the restored image (the operator's input)."""
    vae = checks.check_vae(vae)
    measurement = checks.check_image(measurement, "measurement")
    comfy_compat.parameterisation_of(comfy_compat.model_sampling_of(model))
    channels = model.model.latent_format.latent_channels
    checks.check_vae_fits_model(vae, channels)
    pixel_shape = operator.input_shape((measurement.shape[0], 3, *measurement.shape[1:3]))
    scale = checks.vae_scale(vae)
    checks.check_fits_vae(pixel_shape[-2], pixel_shape[-1], scale, "measurement", "the restored size ")
    if pixel_shape[-2] % scale or pixel_shape[-1] % scale:
        raise ValueError(f"measurement: the restored size {pixel_shape[-1]}x{pixel_shape[-2]} is not a multiple of "
                         f"{scale} (the VAE's scale); crop or pad the measurement")
    checks.check_latent_fits_model(model.model, pixel_shape[-2] // scale, pixel_shape[-1] // scale, scale,
                                   "measurement", "give a measurement whose restored image is that size")
    return torch.zeros(pixel_shape[0], channels, pixel_shape[-2] // scale, pixel_shape[-1] // scale)
