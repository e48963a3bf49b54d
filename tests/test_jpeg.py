"""The JPEG operator: the same image Pillow's JPEG gives at the same quality, gradients for Spin and DCDP,
and a clear refusal from DInG Restore."""
import io

import numpy as np
import pytest
import torch
from PIL import Image


def photo_patch():
    import skimage.data
    return skimage.data.astronaut()[100:164, 150:230]  # 64x80 px, a face and hair: edges and texture


def pillow_jpeg(rgb: np.ndarray, quality: int, chroma_subsampling: bool) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality, subsampling=2 if chroma_subsampling else 0)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


@pytest.mark.parametrize("quality", [5, 10, 20, 50, 90])
@pytest.mark.parametrize("chroma_subsampling", [True, False])
def test_jpeg_matches_pillow_at_the_same_quality(pack, quality, chroma_subsampling):
    """Measured 43.9-51.8 dB between the two, where either is 24.7-38 dB from the original: the same blocks,
    ringing and colour smear, up to libjpeg's integer arithmetic."""
    rgb = photo_patch()
    pixels = torch.tensor(rgb).permute(2, 0, 1)[None].double() / 127.5 - 1
    ours = pack.solvers.jpeg.JPEG(quality, chroma_subsampling).forward(pixels)
    ours = ((ours[0].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).numpy().astype(np.uint8)
    reference = pillow_jpeg(rgb, quality, chroma_subsampling)
    assert psnr(ours, reference) > 42.0
    assert psnr(ours, reference) > psnr(reference, rgb) + 7.0


def test_quantisation_tables_follow_libjpeg(pack):
    jpeg = pack.solvers.jpeg
    torch.testing.assert_close(jpeg.quantisation_table(jpeg.LUMA_TABLE, 50), jpeg.LUMA_TABLE)
    assert torch.all(jpeg.quantisation_table(jpeg.LUMA_TABLE, 100) == 1)
    assert float(jpeg.quantisation_table(jpeg.CHROMA_TABLE, 1).max()) == 255  # baseline: steps at most 255
    assert float(jpeg.quantisation_table(jpeg.LUMA_TABLE, 10)[0, 0]) == 80  # 16 x 500 %
    dct = jpeg.dct_matrix()
    torch.testing.assert_close(dct @ dct.T, torch.eye(8, dtype=torch.float64))


def test_both_roundings_compress_alike_and_give_gradients(pack, generator):
    jpeg, ops = pack.solvers.jpeg, pack.solvers.operators
    x = torch.rand(2, 3, 24, 40, generator=generator) * 2 - 1
    straight, smooth = jpeg.JPEG(10, rounding="straight-through"), jpeg.JPEG(10, rounding="smooth")
    compressed = straight.forward(x)
    assert compressed.shape == x.shape and float((compressed - x).abs().mean()) > 0.01
    torch.testing.assert_close(smooth.forward(x), compressed)
    for operator in (straight, smooth):
        probe = x.clone().requires_grad_()
        (operator.forward(probe) - compressed.flip(0)).square().sum().backward()
        assert torch.isfinite(probe.grad).all() and probe.grad.abs().sum() > 0
    assert not straight.linear
    with pytest.raises(ValueError, match="image: 1 channel, but the JPEG operator takes RGB"):
        straight.check_fits((1, 1, 8, 8), "image")
    with pytest.raises(ValueError, match="quality must be 1..100"):
        jpeg.JPEG(0)
    with pytest.raises(ValueError, match="not linear"):
        pack.solvers.ding_restore.require_linear(straight)
    # a JPEG of a JPEG at the same quality changes little: what the restorers' fits rely on
    assert float((straight.forward(compressed) - compressed).abs().mean()) < 0.2 * float((compressed - x).abs().mean())
    assert isinstance(straight, ops.Operator)


def test_jpeg_node_degrades_and_composes(engine, tiny):
    image, _ = tiny.TinyLoadImage().load(32, 2)
    image_copy = image.clone()
    operator = engine.nodes["InverseOperatorJPEG"]().build(10, True, "straight-through")[0]
    degraded = engine.nodes["InverseDegradeImage"]().degrade(image, operator, 0.0, 0)[0]
    assert degraded.shape == image.shape and float((degraded - image).abs().mean()) > 0.005
    assert torch.equal(image, image_copy)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.0)[0]
    chain = engine.nodes["InverseOperatorCompose"]().build(blur, operator)[0]
    assert not chain.linear and chain.describe().endswith("JPEG quality 10")
    assert engine.nodes["InverseDegradeImage"]().degrade(image, chain, 0.0, 0)[0].shape == image.shape


def test_jpeg_projection_lands_in_the_measured_quantisation_cells(pack, generator):
    """project(x, y): the JPEG of the result is y (to y's own 8-bit rounding), an image in [−1, 1] near x
    (measured rms 0.0019-0.0029 against 0.06-0.07 before)."""
    rgb = photo_patch()
    truth = torch.tensor(rgb).permute(2, 0, 1)[None].double() / 127.5 - 1
    for quality, chroma_subsampling in [(5, True), (10, False), (50, True)]:
        operator = pack.solvers.jpeg.JPEG(quality, chroma_subsampling)
        y = ((operator.forward(truth) + 1) * 127.5).round() / 127.5 - 1   # a decoded 8-bit JPEG
        start = truth + 0.1 * torch.randn(truth.shape, generator=generator, dtype=torch.float64)
        projected = operator.project(start, y)
        before = float((operator.forward(start) - y).square().mean().sqrt())
        after = float((operator.forward(projected) - y).square().mean().sqrt())
        assert after < 0.004 < 0.05 < before, (quality, after, before)
        assert float((projected - start.clamp(-1, 1)).square().mean().sqrt()) < 0.05
        assert float(projected.min()) >= -1 and float(projected.max()) <= 1


def test_dcdp_removes_jpeg_blocks_and_stays_consistent_with_the_file(engine):
    """The face prior (exact model of 25x25 faces), a JPEG at quality 10: DCDP ending on its fit (the projection)
    gives faces whose JPEG is the file, without the file's blocks, about as close to the truth as the file (a
    sample, not the posterior mean). Measured: JPEG residual 0.0027 (0..1 units), blockiness 0.79 (JPEG 1.29,
    truth 0.72), PSNR 21.4 dB per sample and 22.1 dB for the mean of four (JPEG 22.7 dB); gradient steps
    through the rounding (dc_solver momentum) end 0.006 off the file."""
    from oracle_problems import blockiness, image_psnr, jpeg_file_residual, node_defaults
    model, vae, faces, _, cond, _ = engine.nodes["InverseFacePriorLoader"]().load("eps", 4)
    operator = engine.nodes["InverseOperatorJPEG"]().build(10, True, "straight-through")[0]
    jpeg = engine.nodes["InverseDegradeImage"]().degrade(faces, operator, 0.0, 0)[0]
    node = engine.nodes["InverseDCDPRestore"]

    def restore(seed, **overrides):
        options = dict(node_defaults(node), seed=seed, skip_final_purification=True, **overrides)
        return node().restore(model=model, positive=cond, negative=cond, vae=vae, measurement=jpeg,
                              operator=operator, **options)[0]

    def file_residual(image):
        return jpeg_file_residual(operator, image, jpeg)

    def psnr(image):
        return image_psnr(image, faces)
    samples = [restore(seed) for seed in range(4)]
    assert max(file_residual(sample) for sample in samples) < 0.005
    assert max(blockiness(sample) for sample in samples) < 0.9 < 1.2 < blockiness(jpeg)
    assert psnr(torch.stack(samples).mean(0)) > psnr(jpeg) - 1.0
    assert min(psnr(sample) for sample in samples) > psnr(jpeg) - 2.5
    assert file_residual(restore(0, dc_solver="momentum")) > 0.003
