"""The photos the testbed autoencoder is trained and measured on: scikit-image's sample images.

Everything here is read from files that ship inside the installed scikit-image package (no download).
Training: astronaut, rocket, both motorcycle views, Hubble deep field, retina, immunohistochemistry,
and the grey photos camera, coins, moon, grass, gravel and brick (as RGB), plus the 200 LFW crops
(25×25 grey, up-sampled to 64×64). Held out, never seen in training: chelsea (the cat) and coffee.
Images are float32 tensors [3, H, W] in [0, 1].
"""
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

TRAIN_COLOUR = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right", "hubble_deep_field", "retina",
                "immunohistochemistry")
TRAIN_GREY = ("camera", "coins", "moon", "grass", "gravel", "brick")
HELD_OUT = ("chelsea", "coffee")


def _as_tensor(array) -> torch.Tensor:
    array = np.asarray(array)
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    else:
        array = array.astype(np.float32)
        array = (array - array.min()) / max(float(array.max() - array.min()), 1e-8)
    image = torch.from_numpy(np.ascontiguousarray(array))
    if image.ndim == 2:
        image = image[None].expand(3, -1, -1)
    else:
        image = image[..., :3].permute(2, 0, 1)
    return image.contiguous()


@lru_cache(maxsize=None)
def photo(name: str) -> torch.Tensor:
    """One sample photo as [3, H, W] in [0, 1]."""
    import skimage.data
    if name.startswith("motorcycle_"):
        left, right, _ = skimage.data.stereo_motorcycle()
        return _as_tensor(left if name.endswith("left") else right)
    return _as_tensor(getattr(skimage.data, name)())


@lru_cache(maxsize=1)
def lfw_faces(size: int = 64) -> torch.Tensor:
    """The 200 LFW crops up-sampled to size×size RGB: [200, 3, size, size] in [0, 1]."""
    import skimage.data
    faces = torch.from_numpy(np.asarray(skimage.data.lfw_subset(), dtype=np.float32))[:, None]
    faces = F.interpolate(faces, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return faces.expand(-1, 3, -1, -1).contiguous()


def training_images():
    """The training photos, each at full and half resolution (the half-size copy shows more content per
    patch): a list of [3, H, W] tensors and a matching list of sampling weights."""
    images, weights = [], []
    for name in TRAIN_COLOUR + TRAIN_GREY:
        full = photo(name)
        half = F.interpolate(full[None], scale_factor=0.5, mode="area")[0]
        weight = 3.0 if name in TRAIN_COLOUR else 1.0
        images += [full, half]
        weights += [0.6 * weight, 0.4 * weight]
    return images, weights


class PatchSampler:
    """Random size×size training patches (random photo by weight, random position, random mirror);
    a quarter of each batch comes from the LFW faces. Deterministic given the generator."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator
        self.images, weights = training_images()
        self.weights = torch.tensor(weights)
        self.faces = lfw_faces()

    def batch(self, count: int, size: int) -> torch.Tensor:
        g = self.generator
        n_faces = count // 4
        out = []
        picks = torch.multinomial(self.weights, count - n_faces, replacement=True, generator=g)
        for index in picks.tolist():
            image = self.images[index]
            top = int(torch.randint(image.shape[1] - size + 1, (1,), generator=g))
            left = int(torch.randint(image.shape[2] - size + 1, (1,), generator=g))
            out.append(image[:, top:top + size, left:left + size])
        for index in torch.randint(len(self.faces), (n_faces,), generator=g).tolist():
            face = self.faces[index]
            top = int(torch.randint(face.shape[1] - size + 1, (1,), generator=g))
            left = int(torch.randint(face.shape[2] - size + 1, (1,), generator=g))
            out.append(face[:, top:top + size, left:left + size])
        patches = torch.stack(out)
        flips = torch.rand(count, generator=g) < 0.5
        patches[flips] = patches[flips].flip(-1)
        return patches


def held_out_patches(size: int = 64, stride: int = None, names=HELD_OUT) -> torch.Tensor:
    """A fixed grid of size×size patches [N, 3, size, size] of the held-out photos (row-major)."""
    stride = stride or size
    patches = []
    for name in names:
        image = photo(name)
        for top in range(0, image.shape[1] - size + 1, stride):
            for left in range(0, image.shape[2] - size + 1, stride):
                patches.append(image[:, top:top + size, left:left + size])
    return torch.stack(patches)
