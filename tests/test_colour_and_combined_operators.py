"""Colourisation (the greyscale operator) and degradations combined in one operator socket: the nodes, the
three restorers through ComfyUI's executor, and colour restored against the exact posterior."""
import pytest
import torch

from oracle_problems import RestoreOracle, node_defaults, restore_operators

REC601 = "Rec. 601 (SD video, most photo editors)"


def greyscale(engine, weights=REC601, red=0.299, green=0.587, blue=0.114):
    return engine.nodes["InverseOperatorGreyscale"]().build(weights, red, green, blue)[0]


def combined(engine, *stages):
    return engine.nodes["InverseOperatorCompose"]().build(*stages)[0]


def degrade(engine, image, operator, noise=0.01):
    return engine.nodes["InverseDegradeImage"]().degrade(image, operator, noise, 0)[0]


def test_greyscale_node_presets_custom_weights_and_errors(engine, pack):
    luminance = pack.solvers.operators.LUMINANCE_WEIGHTS
    for name, weights in luminance.items():
        expected = torch.tensor(weights) / sum(weights)
        torch.testing.assert_close(greyscale(engine, name).weights, expected)
    torch.testing.assert_close(greyscale(engine, "custom", 2.0, 1.0, 1.0).weights, torch.tensor([0.5, 0.25, 0.25]))
    with pytest.raises(ValueError, match="red, green, blue: .*positive sum"):
        greyscale(engine, "custom", 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="weights: must be one of"):
        greyscale(engine, "sepia")


def test_degrade_image_shows_a_black_and_white_photo_and_a_combined_degradation(engine, tiny):
    image, _ = tiny.TinyLoadImage().load(32, 2)
    image_copy = image.clone()
    photo = degrade(engine, image, greyscale(engine), noise=0.0)
    assert photo.shape == image.shape  # an IMAGE: RGB, with R = G = B
    assert torch.equal(photo[..., 0], photo[..., 1]) and torch.equal(photo[..., 1], photo[..., 2])
    expected = 0.299 * image[..., 0] + 0.587 * image[..., 1] + 0.114 * image[..., 2]
    torch.testing.assert_close(photo[..., 0], expected, atol=1e-6, rtol=0)
    blur = engine.nodes["InverseOperatorGaussianBlur"]().build(5, 1.5)[0]
    down = engine.nodes["InverseOperatorDownsample"]().build(2, "bicubic")[0]
    old = degrade(engine, image, combined(engine, blur, down, greyscale(engine)))
    assert old.shape == (2, 16, 16, 3) and torch.equal(old[..., 0], old[..., 2])
    assert torch.equal(image, image_copy)
    two_stages = combined(engine, blur, down)
    assert degrade(engine, image, two_stages).shape == (2, 16, 16, 3) and len(two_stages.stages) == 2
    with pytest.raises(ValueError, match="image after gaussian blur .*not a multiple of the downsampling factor 2"):
        degrade(engine, tiny.TinyLoadImage().load(32, 1)[0][:, :31], two_stages)


RESTORE_NODES = {
    "InverseDInGRestore": lambda engine: node_defaults(engine.nodes["InverseDInGRestore"]),
    "InverseSpinRestore": lambda engine: node_defaults(engine.nodes["InverseSpinRestore"]),
    "InverseDCDPRestore": lambda engine: dict(node_defaults(engine.nodes["InverseDCDPRestore"]), outer_iterations=3),
}


@pytest.mark.parametrize("node_id", list(RESTORE_NODES))
def test_every_restorer_takes_colour_and_combined_operators_through_the_executor(engine, tiny, node_id, tmp_path):
    """The graph a user wires: tiny SD1.5 → degrade (blur, x2, greyscale) → restore node; the output is in
    colour at the restored size, and the same seed gives the same image."""
    options = {name: value for name, value in RESTORE_NODES[node_id](engine).items()
               if name not in ("seed", "steps", "cfg", "scheduler")}
    prompt = {
        "1": {"class_type": "TinyCheckpointLoader", "inputs": {"family": "sd15", "seed": 0}},
        "2": {"class_type": "TinyTextEncode", "inputs": {"clip": ["1", 1], "text": "a photo"}},
        "3": {"class_type": "TinyDecodableImage", "inputs": {"vae": ["1", 2], "size": 64, "seed": 1}},
        "4": {"class_type": "InverseOperatorGaussianBlur", "inputs": {"kernel_size": 5, "std": 1.5}},
        "5": {"class_type": "InverseOperatorDownsample", "inputs": {"factor": 2, "mode": "bicubic"}},
        "6": {"class_type": "InverseOperatorGreyscale", "inputs": {"weights": REC601, "red": 0.299, "green": 0.587,
                                                                   "blue": 0.114}},
        "7": {"class_type": "InverseOperatorCompose", "inputs": {"first": ["4", 0], "second": ["5", 0],
                                                                 "third": ["6", 0]}},
        "8": {"class_type": "InverseDegradeImage", "inputs": {"image": ["3", 0], "operator": ["7", 0],
                                                              "noise_std": 0.02, "seed": 2}},
        "9": {"class_type": node_id, "inputs": {
            "model": ["1", 0], "positive": ["2", 0], "negative": ["2", 0], "vae": ["1", 2], "measurement": ["8", 0],
            "operator": ["7", 0], "seed": 3, "steps": 6, "cfg": 1.0, "scheduler": "normal", **options}},
        "10": {"class_type": "TinyCapture", "inputs": {"images": ["9", 0], "label": "restored"}},
        "11": {"class_type": "TinyCapture", "inputs": {"images": ["8", 0], "label": "measurement"}},
    }
    tiny.CAPTURED.clear()
    engine.execute(prompt, output_dir=tmp_path)
    restored, measurement = tiny.CAPTURED["restored"], tiny.CAPTURED["measurement"]
    assert measurement.shape == (1, 32, 32, 3) and restored.shape == (1, 64, 64, 3)
    assert torch.isfinite(restored).all()
    first = restored.clone()
    engine.execute(prompt, output_dir=tmp_path)
    assert torch.equal(tiny.CAPTURED["restored"], first)


# Colour restored against the exact posterior, 8x8 RGB images seen in grey (64 of 192 values): DInG Restore
# as close as the same loop with dense exact steps (tests/test_ding_restore.py has the other autoencoders);
# Spin and DCDP, which are not exact samplers, far nearer the posterior than the prior.
N_SAMPLES, STEPS = 200, 20


@pytest.mark.parametrize("prediction", ["eps", "flow"])
def test_colour_restored_close_to_the_exact_posterior(engine, pack, prediction):
    oracle = RestoreOracle(engine, pack, restore_operators(pack)["colourise"], prediction, "identity", N_SAMPLES,
                           STEPS)
    generator = torch.Generator().manual_seed(0)
    common = (oracle.vae, oracle.measurement, oracle.operator)

    def sampler(node_id):
        node = engine.nodes[node_id]
        options = node_defaults(node)
        if "measurement_noise" in options:  # DCDP has none: its proximal_weight plays that part
            options["measurement_noise"] = 0.025  # RESTORE_NOISE = 0.05 in [−1, 1] units
        return node().get_sampler(*common, **options)[0]
    distances = {"ding": oracle.distance(oracle.sample(sampler("InverseDInGRestoreSampler")), generator),
                 "spin": oracle.distance(oracle.sample(sampler("InverseSpinSampler"), add_noise=False), generator),
                 "dcdp": oracle.distance(oracle.sample(sampler("InverseDCDPSampler"), add_noise=False), generator)}
    dense = oracle.distance(oracle.dense_reference(), generator)
    prior = oracle.distance(oracle.mixture.sample(N_SAMPLES, generator), generator)
    print(f"\ncolourise {prediction}: sliced W2 to the exact posterior (floor {oracle.floor:.4f}, dense DInG "
          f"{dense:.4f}, prior {prior:.4f}): " + ", ".join(f"{k} {v:.4f}" for k, v in distances.items()))
    assert distances["ding"] < 1.15 * dense + oracle.floor
    assert distances["spin"] < 0.5 * prior and distances["dcdp"] < 0.5 * prior
