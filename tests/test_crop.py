"""Context-area cropping (Crop & Stitch) in the all-in-one inpainting node: box computation at image
borders, stitching that keeps every pixel outside the mask exact, per-image masks in a batch, and
the uncropped result when the crop covers the whole image."""
import torch

from test_nodes import inpaint, tiny_family


def test_boxes_grow_by_the_margin_and_stop_at_the_borders(pack):
    crop = pack.solvers.crop
    holes = torch.zeros(3, 100, 80)
    holes[0, 40:50, 30:40] = 1.0      # middle: margin on every side
    holes[1, 0:5, 70:80] = 1.0        # top-right corner: clipped there
    holes[2, 95:100, 0:3] = 0.5       # bottom-left corner, soft values count
    assert crop.hole_box(holes[0]) == (40, 50, 30, 40)
    assert crop.hole_box(torch.zeros(5, 5)) is None
    middle, corner, other = [crop.context_boxes(h[None], 8)[0] for h in holes]
    assert middle == (32, 58, 22, 48)
    assert corner == (0, 13, 62, 80)
    assert other == (87, 100, 0, 11)
    # a batch shares one crop size: each box grows to the largest, shifted back inside the image
    boxes = crop.context_boxes(holes, 8)
    assert {(b[1] - b[0], b[3] - b[2]) for b in boxes} == {(26, 26)}
    assert boxes[1] == (0, 26, 54, 80) and boxes[2] == (74, 100, 0, 26)
    for box, hole in zip(boxes, holes):
        inner = crop.hole_box(hole)
        assert box[0] <= inner[0] and box[1] >= inner[1] and box[2] <= inner[2] and box[3] >= inner[3]
    # a margin wider than the image: the whole image
    assert crop.context_boxes(holes[:1], 500) == [(0, 100, 0, 80)]


def test_crop_size_is_a_multiple_of_the_vae_scale(pack):
    crop = pack.solvers.crop
    assert crop.crop_size(200, 100, 1024, 8) == (1024, 512)
    assert crop.crop_size(30, 1000, 512, 8) == (16, 512)
    assert crop.crop_size(3, 3, 512, 8) == (512, 512)
    assert crop.crop_size(37, 45, 0, 8) == (37, 45)       # native scale: the box itself


def test_stitch_keeps_every_pixel_outside_the_mask_and_matches_a_full_paste(pack, generator):
    crop, masks = pack.solvers.crop, pack.solvers.masks
    original = torch.rand(2, 60, 70, 3, generator=generator)
    holes = torch.zeros(2, 60, 70)
    holes[0, 10:30, 5:25] = 1.0
    holes[1, 40:60, 50:70] = torch.rand(20, 20, generator=generator)  # soft, at the corner
    boxes = crop.context_boxes(holes, 6)
    generated_full = torch.rand(2, 60, 70, 3, generator=generator)
    generated = crop.crop(generated_full, boxes)
    for feather in (0.0, 4.0):
        out = crop.stitch(original, generated, holes, boxes, feather)
        known = (holes == 0)[..., None].expand_as(original)
        assert torch.equal(out[known], original[known])
        # where the generated crop agrees with a full generated image, the stitch is the full paste-back
        full = masks.paste_back(original, generated_full, holes, feather)
        assert torch.equal(out, full)


def test_node_crops_per_image_masks_and_keeps_the_rest_exact(engine, tiny):
    model, _, vae = tiny_family(engine, tiny, "sd15")
    image, _ = tiny.TinyLoadImage().load(96, 2)
    mask = torch.zeros(2, 96, 96)
    mask[0, 8:20, 10:26] = 1.0       # near the top-left corner
    mask[1, 70:90, 60:72] = 1.0      # bottom right
    cond = tiny.tiny_conditioning("a")
    out, latent, info = inpaint(engine, model, vae, image, mask, cond, context_crop=True, context_margin=8,
                                crop_resolution=64)
    assert out.shape == image.shape and torch.isfinite(out).all()
    known = (mask == 0)[..., None].expand_as(image)
    assert torch.equal(out[known], image[known])
    assert not torch.equal(out[~known], image[~known])
    assert latent["samples"].shape[0] == 2 and "context crop 32x34 px at 64x64" in info
    # one mask for the batch: one box for both images
    shared, _, _ = inpaint(engine, model, vae, image, mask[:1], cond, context_crop=True, context_margin=8,
                           crop_resolution=0)
    assert torch.equal(shared[(mask[:1] == 0)[..., None].expand_as(image)],
                       image[(mask[:1] == 0)[..., None].expand_as(image)])


def test_a_crop_covering_the_whole_image_is_the_uncropped_result(engine, tiny):
    model, _, vae = tiny_family(engine, tiny, "sd15")
    image, mask = tiny.TinyLoadImage().load(64, 2)
    cond = tiny.tiny_conditioning("a")
    uncropped = inpaint(engine, model, vae, image, mask, cond, paste_back=True, paste_feather=3.0)[0]
    for resolution in (0, 64):   # native scale, or a target equal to the image's size
        cropped = inpaint(engine, model, vae, image, mask, cond, paste_back=True, paste_feather=3.0,
                          context_crop=True, context_margin=1000, crop_resolution=resolution)[0]
        assert torch.equal(cropped, uncropped)
