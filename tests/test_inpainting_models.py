"""Inpainting checkpoints: SD's 9-channel UNet and Flux Fill, whose extra input channels carry the hole and
the greyed-out picture (ComfyUI's InpaintModelConditioning), on tiny random models of the classes ComfyUI
builds for those checkpoints. Every sampler runs with them, the model is shown the hole DInG fills, and
masks that disagree are a clear error."""
import pytest
import torch

from oracle_problems import node_defaults

INPAINTING = ["sd15_inpaint", "flux_fill"]


def load(engine, tiny, family):
    if "flux" in family and engine.name == "fork":
        pytest.skip("the PyPI fork comfyui==0.0.1 has no Flux model; Flux Fill runs on the upstream pass")
    return tiny.TinyCheckpointLoader().load(family, 0)


class ModelInputs:
    """Records the input tensor of every call to the diffusion network (noisy latent + concat channels)."""

    def __init__(self, model):
        self.seen = []
        self.handle = model.model.diffusion_model.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        self.seen.append((args[0] if args else kwargs["x"]).detach().clone())

    def close(self):
        self.handle.remove()

    def hole(self, family, batch):
        """The hole the model was shown, at latent size, on the first call's conditional half."""
        x = self.seen[0][:batch]
        return x[:, 4:5] if family == "sd15_inpaint" else x[:, 32:].mean(1, keepdim=True)

    def masked_image(self, family, batch):
        x = self.seen[0][:batch]
        return x[:, 5:9] if family == "sd15_inpaint" else x[:, 16:32]


def inpaint_model_conditioning(engine, cond, vae, image, mask):
    node = engine.nodes["InpaintModelConditioning"]()
    if engine.name == "upstream":
        return node.encode(cond, cond, image, vae, mask, True)
    return node.encode(cond, cond, image, vae, mask)  # the fork's node has no noise_mask switch (always on)


def sampler_custom(engine, model, sampler, positive, negative, latent, steps=4, cfg=2.0):
    sigmas = engine.nodes["BasicScheduler"]().get_sigmas(model, "normal", steps, 1.0)[0]
    return engine.nodes["SamplerCustom"]().sample(model, True, 5, cfg, positive, negative, sampler, sigmas, latent)[0]


def test_inpainting_models_are_recognised(engine, pack, tiny):
    compat = pack.nodes.comfy_compat
    assert compat.is_inpainting_model(load(engine, tiny, "sd15_inpaint")[0])
    assert not compat.is_inpainting_model(load(engine, tiny, "sd15")[0])
    assert load(engine, tiny, "sd15_inpaint")[0].model.concat_keys == ("mask", "masked_image")
    if engine.name == "upstream":
        assert compat.is_inpainting_model(load(engine, tiny, "flux_fill")[0])
        assert not compat.is_inpainting_model(load(engine, tiny, "flux")[0])


@pytest.mark.parametrize("family", INPAINTING)
def test_ding_sampler_through_inpaint_model_conditioning(engine, tiny, family):
    model, _, vae = load(engine, tiny, family)
    image, mask = tiny.TinyLoadImage().load(64, 2)
    cond = tiny.tiny_conditioning("a house")
    positive, negative, latent = inpaint_model_conditioning(engine, cond, vae, image, mask)
    sampler = engine.nodes["InverseDInGSampler"]().get_sampler("ding", "fm_square", 1.0, 0.01)[0]
    inputs = ModelInputs(model)
    try:
        out = sampler_custom(engine, model, sampler, positive, negative, latent)
    finally:
        inputs.close()
    samples = out["samples"]
    assert samples.shape == latent["samples"].shape and torch.isfinite(samples).all()
    channels = 9 if family == "sd15_inpaint" else 96
    assert all(x.shape[1] == channels for x in inputs.seen) and len(inputs.seen) == 7  # 2 per step + 1
    hole = torch.nn.functional.interpolate(mask[:, None], size=samples.shape[-2:], mode="bilinear")
    torch.testing.assert_close(inputs.hole(family, 2), hole.round())  # the model saw the hole DInG filled
    change = (samples - latent["samples"]).detach().abs().permute(0, 2, 3, 1)
    kept, filled = float(change[hole[:, 0] == 0].mean()), float(change[hole[:, 0] == 1].mean())
    print(f"\n{family}: mean latent change, known cells {kept:.4f}, hole {filled:.4f}")
    assert kept < 0.1 < filled, "DInG keeps the known latent cells (obs_std 0.01) and fills the hole"


@pytest.mark.parametrize("family", INPAINTING)
def test_all_in_one_shows_an_inpainting_model_the_hole_it_fills(engine, pack, tiny, family):
    model, _, vae = load(engine, tiny, family)
    image, mask = tiny.TinyLoadImage().load(64, 1)
    mask[:, 28:36, 44:52] = 0.5  # a soft patch: a cell DInG counts as unknown (threshold mode), though half known
    cond = tiny.tiny_conditioning("a house")
    options = dict(node_defaults(engine.nodes["InverseDInGInpaint"]), seed=3, steps=3, cfg=2.0)
    inputs = ModelInputs(model)
    try:
        result, _, info = engine.nodes["InverseDInGInpaint"]().inpaint(model, cond, cond, vae, image, mask, **options)
    finally:
        inputs.close()
    assert "inpainting model shown DInG's hole" in info and torch.isfinite(result).all()
    masks = pack.solvers.masks
    observed = masks.latent_observed_mask(mask, (8, 8), "threshold", options["mask_threshold"])
    torch.testing.assert_close(inputs.hole(family, 1), 1.0 - observed)
    greyed = masks.grey_out_hole(image, masks.hole_in_pixels(observed, (64, 64)))
    expected = model.model.process_latent_in(pack.nodes.vae_bridge.encode_reproducibly(vae, greyed, seed=3))
    torch.testing.assert_close(inputs.masked_image(family, 1), expected, atol=1e-5, rtol=1e-5)


def test_all_in_one_replaces_inpaint_model_conditioning_with_its_own_hole(engine, tiny):
    """The node's threshold mode widens the hole by the latent cells the mask only partly covers; the model
    must be shown that hole, not the conditioning's narrower one, and `info` says so."""
    model, _, vae = load(engine, tiny, "sd15_inpaint")
    image, mask = tiny.TinyLoadImage().load(64, 1)
    cond = tiny.tiny_conditioning("a house")
    positive, negative, _ = inpaint_model_conditioning(engine, cond, vae, image, mask)
    options = dict(node_defaults(engine.nodes["InverseDInGInpaint"]), seed=3, steps=2, cfg=2.0)
    inputs = ModelInputs(model)
    try:
        _, latent, info = engine.nodes["InverseDInGInpaint"]().inpaint(model, positive, negative, vae, image, mask,
                                                                       **options)
    finally:
        inputs.close()
    assert "(in place of InpaintModelConditioning's)" in info
    users_hole = torch.nn.functional.interpolate(positive[0][1]["concat_mask"], size=(8, 8), mode="bilinear")
    shown = inputs.hole("sd15_inpaint", 1)
    assert float(shown.sum()) > float(users_hole.sum()) and bool((shown >= users_hole).all())
    assert "concat_mask" in positive[0][1] and positive[0][1]["concat_mask"].shape == (1, 1, 64, 64)  # untouched


def test_masks_that_disagree_are_a_clear_error(engine, tiny):
    model, _, vae = load(engine, tiny, "sd15_inpaint")
    image, mask = tiny.TinyLoadImage().load(64, 1)
    cond = tiny.tiny_conditioning("a house")
    positive, negative, latent = inpaint_model_conditioning(engine, cond, vae, image, mask)
    other_hole = engine.nodes["SetLatentNoiseMask"]().set_mask(latent, torch.flip(mask, [1, 2]) * 0 + 1.0)[0]
    sampler = engine.nodes["InverseDInGSampler"]().get_sampler("ding", "fm_square", 1.0, 0.01)[0]
    with pytest.raises(Exception, match="InpaintModelConditioning.*marks another region"):
        sampler_custom(engine, model, sampler, positive, negative, other_hole, steps=2)


def test_an_inpainting_model_without_its_conditioning_is_named_in_the_log(engine, tiny, caplog):
    model, _, vae = load(engine, tiny, "sd15_inpaint")
    image, mask = tiny.TinyLoadImage().load(64, 1)
    cond = tiny.tiny_conditioning("a house")
    latent = engine.nodes["SetLatentNoiseMask"]().set_mask(engine.nodes["VAEEncode"]().encode(vae, image)[0], mask)[0]
    sampler = engine.nodes["InverseDInGSampler"]().get_sampler("ding", "fm_square", 1.0, 0.01)[0]
    with caplog.at_level("WARNING", logger="inverse_samplers"):
        sampler_custom(engine, model, sampler, cond, cond, latent, steps=2)
    assert "connect InpaintModelConditioning" in caplog.text


@pytest.mark.parametrize("family", INPAINTING)
@pytest.mark.parametrize("node", ["InverseSpinSampler", "InverseDCDPSampler", "InverseDInGRestoreSampler"])
def test_restoration_samplers_inpaint_through_inpaint_model_conditioning(engine, tiny, family, node):
    model, _, vae = load(engine, tiny, family)
    image, mask = tiny.TinyLoadImage().load(64, 1)
    cond = tiny.tiny_conditioning("a house")
    positive, negative, latent = inpaint_model_conditioning(engine, cond, vae, image, mask)
    operator = engine.nodes["InverseOperatorInpaint"]().build(mask)[0]
    options = node_defaults(engine.nodes[node])
    sampler = engine.nodes[node]().get_sampler(vae, image, operator, **options)[0]
    inputs = ModelInputs(model)
    try:
        out = sampler_custom(engine, model, sampler, positive, negative, latent, steps=4, cfg=1.0)
    finally:
        inputs.close()
    assert torch.isfinite(out["samples"]).all() and out["samples"].shape == latent["samples"].shape
    assert inputs.seen and all(x.shape[1] == (9 if family == "sd15_inpaint" else 96) for x in inputs.seen)
    hole = torch.nn.functional.interpolate(mask[:, None], size=(8, 8), mode="bilinear").round()
    torch.testing.assert_close(inputs.hole(family, 1), hole)


@pytest.mark.parametrize("node", ["InverseSpinSampler", "InverseDCDPSampler", "InverseDInGRestoreSampler"])
def test_restoration_through_another_mask_than_the_models_is_a_clear_error(engine, tiny, node):
    model, _, vae = load(engine, tiny, "sd15_inpaint")
    image, mask = tiny.TinyLoadImage().load(64, 1)
    cond = tiny.tiny_conditioning("a house")
    positive, negative, latent = inpaint_model_conditioning(engine, cond, vae, image, mask)
    operator = engine.nodes["InverseOperatorInpaint"]().build(torch.flip(mask, [2]).roll(20, 2))[0]
    sampler = engine.nodes[node]().get_sampler(vae, image, operator, **node_defaults(engine.nodes[node]))[0]
    with pytest.raises(Exception, match="marks another region than the inpainting operator's mask"):
        sampler_custom(engine, model, sampler, positive, negative, latent, steps=2, cfg=1.0)
