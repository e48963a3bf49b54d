"""Compare Images: a labelled grid of enlarged images, one column per input, one row per batch entry."""
import pytest
import torch


def compare(engine, labels="", scale=4, **images):
    shown = engine.nodes["InverseCompareImages"]().compare(labels, scale, **images)
    [preview] = shown["ui"]["images"]  # shown in the node, as Preview Image shows it
    assert preview["type"] == "temp" and preview["filename"].endswith(".png")
    return shown["result"][0]


def test_grid_holds_each_image_enlarged_in_its_column(engine, pack):
    small = torch.rand(2, 5, 5, 3)
    large = torch.rand(1, 25, 25, 3)
    grid = compare(engine, "low res, restored", 2, image_1=small, image_3=large)
    band, gap = pack.nodes.compare_nodes.LABEL_HEIGHT, pack.nodes.compare_nodes.GAP
    assert grid.shape == (1, band + 2 * 50 + gap, 2 * 50 + gap, 3)
    first_row = grid[0, band:band + 50]
    torch.testing.assert_close(first_row[:, :50], small[0].repeat_interleave(10, 0).repeat_interleave(10, 1))
    torch.testing.assert_close(first_row[:, 50 + gap:], large[0].repeat_interleave(2, 0).repeat_interleave(2, 1))
    second_row = grid[0, band + 50 + gap:]  # a single image is repeated on every row
    torch.testing.assert_close(second_row[:, 50 + gap:], first_row[:, 50 + gap:])
    torch.testing.assert_close(second_row[:, :50], small[1].repeat_interleave(10, 0).repeat_interleave(10, 1))
    header = grid[0, :band]
    assert float(header[:, :50].min()) < 0.5 and float(header[:, 50 + gap:].min()) < 0.5  # both labels drawn


def test_clear_errors_and_inputs_untouched(engine):
    with pytest.raises(ValueError, match="image_1: connect at least one image"):
        compare(engine)
    with pytest.raises(ValueError, match="image_1: batch of 2 images beside a batch of 3"):
        compare(engine, image_1=torch.rand(2, 8, 8, 3), image_2=torch.rand(3, 8, 8, 3))
    image = torch.rand(1, 8, 8, 3)
    before = image.clone()
    compare(engine, "a label far too long to fit over an eight pixel column", 1, image_1=image)
    torch.testing.assert_close(image, before)
