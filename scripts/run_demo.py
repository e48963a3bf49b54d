"""The main job: run the face workflows headlessly through ComfyUI's executor on the embedded face
prior, once per seed, and write labelled PNG sheets to OUTPUT_DIR (default ./output):

- face_inpainting_sheet.png   (workflows/"Demo - DInG vs ComfyUI inpainting on faces (no download).json"): per held-out face, the masked input,
  DInG's and ComfyUI's built-in inpainting (SetLatentNoiseMask + euler_ancestral): a few posterior
  samples, their mean and spread, then the exact posterior (samples, mean, spread) and the truth;
- face_restoration_sheet.png  (workflows/"Demo - DInG Restore and Spin deblur and x5 super-resolution on faces (no download).json"):
  the same for DInG Restore and Spin on blur + noise and on x5 down-sampling.

The face prior is a Gaussian mixture, so the exact posterior of every task is known in closed form
(`GaussianMixture.condition`). Printed and drawn under each block: PSNR of the posterior mean against
the true face (on the hole for inpainting), and the sliced W2 distance between the workflow's samples
and exact posterior samples (pixel units 0..1), next to the floor that two exact sample sets of the
same size reach. DEMO_SAMPLES (default 8) sets the number of seeds.
"""
import importlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_harness  # noqa: E402
from build_workflows import INPAINTING_COLUMNS, RESTORATION_COLUMNS  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402

FACE = 25
ZOOM = 5
TILE = FACE * ZOOM
GAP = 4
SHOWN = 3           # posterior samples drawn per method
EXACT_SHOWN = 2
N_EXACT = 500       # exact posterior samples for the distance
STD_GAIN = 4.0      # spread maps show 4 x the per-pixel std
DING_OBS_STD = 0.01  # the workflow's DInG obs_std (latent units = the prior's [-1, 1] units)
MASK_NAMES = ["eye band", "mouth", "right half", "centre box"]

INPAINTING = {
    "workflow": "Demo - DInG vs ComfyUI inpainting on faces (no download).json", "sheet": "face_inpainting_sheet.png",
    "title": "Inpainting held-out faces (DInG vs ComfyUI's built-in inpainting) on the exact face prior",
    "methods": [("faces_ding", "DInG"), ("faces_comfy_inpaint", "ComfyUI inpaint (euler_ancestral)")],
    "input": ("faces_masked_input", "masked input"),
}
RESTORATION = {
    "workflow": "Demo - DInG Restore and Spin deblur and x5 super-resolution on faces (no download).json",
    "sheet": "face_restoration_sheet.png",
    "title": "Restoring held-out faces with DInG Restore and Spin on the exact face prior",
    "methods": ("DInG Restore", "Spin"),
    # operator node, measured prefix, restored prefix per method, task name
    "tasks": [("InverseOperatorGaussianBlur", "faces_blurred", ("faces_ding_deblur", "faces_spin_deblur"), "blur + noise"),
              ("InverseOperatorDownsample", "faces_low_res", ("faces_ding_sr", "faces_spin_sr"), "x5 down-sampled")],
}


# ---------------------------------------------------------------- running the workflows
def load_workflow(engine, name):
    """The shipped workflow as an API prompt, with a SaveImage for each column of its comparison (under the
    prefix INPAINTING_COLUMNS / RESTORATION_COLUMNS give its label). Its info previews are upstream core's
    PreviewAny, which the PyPI fork lacks: display only, dropped there."""
    workflow = json.loads((comfy_harness.REPO_ROOT / "workflows" / name).read_text())
    workflow["nodes"] = [n for n in workflow["nodes"] if n["type"] != "PreviewAny" or "PreviewAny" in engine.nodes]
    return with_column_savers(ui_to_api(workflow, engine.nodes), INPAINTING_COLUMNS | RESTORATION_COLUMNS)


def with_column_savers(prompt, prefixes):
    """A SaveImage node for every image input of every Compare Images node, named by its column's label."""
    savers = {}
    for node in prompt.values():
        if node["class_type"] != "InverseCompareImages":
            continue
        slots = sorted((name for name in node["inputs"] if name.startswith("image_")), key=lambda n: int(n[6:]))
        for label, slot in zip(node["inputs"]["labels"].split(","), slots):
            savers[str(1000 + len(savers))] = {"class_type": "SaveImage", "inputs": {
                "images": node["inputs"][slot], "filename_prefix": prefixes[label.strip()]}}
    return prompt | savers


def with_seed(prompt, seed):
    """The API prompt with every sampler seed set to `seed` (the degradation's seed stays: same measurement)."""
    prompt = json.loads(json.dumps(prompt))
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "SamplerCustom":
            inputs["noise_seed"] = seed
        elif node["class_type"].startswith("Inverse") and "seed" in inputs and node["class_type"] != "InverseDegradeImage":
            inputs["seed"] = seed
    return prompt


def saved_images(outputs, output_dir, prefix):
    """The grey images a SaveImage node with this prefix wrote, [n, 25, 25] in 0..1 (nearest-upscaled to 25)."""
    for node_output in outputs.values():
        files = [Path(output_dir) / f["subfolder"] / f["filename"] for f in node_output.get("images", [])]
        if files and files[0].name.startswith(prefix + "_"):
            return np.stack([np.asarray(Image.open(f).convert("L").resize((FACE, FACE), Image.NEAREST),
                                        dtype=np.float64) / 255.0 for f in files])
    raise RuntimeError(f"the workflow saved no images with prefix {prefix!r}")


def run_seeds(engine, prompt, prefixes, seeds, output_dir):
    """{prefix: [seeds, faces, 25, 25]} over one execution per seed."""
    runs = {prefix: [] for prefix in prefixes}
    for seed in seeds:
        outputs = engine.execute(with_seed(prompt, seed), output_dir=output_dir / "runs")
        for prefix in prefixes:
            runs[prefix].append(saved_images(outputs, output_dir / "runs", prefix))
    return {prefix: np.stack(images) for prefix, images in runs.items()}


# ---------------------------------------------------------------- metrics

def psnr(estimate, truth, where=None):
    error = (estimate - truth) ** 2
    mse = error[where].mean() if where is not None else error.mean()
    return float(10 * np.log10(1.0 / max(mse, 1e-12)))


class Posterior:
    """Exact posterior of one face given y = A x + noise (x in the prior's [-1, 1] units)."""

    def __init__(self, mixture, operator, measurement, noise_std, generator):
        self.law = mixture.condition(operator, measurement, noise_std)
        self.samples = (self.law.sample(N_EXACT, generator).numpy() + 1) / 2          # pixel units
        self.mean = ((self.law.mean().numpy() + 1) / 2).reshape(FACE, FACE)
        self.std = self.samples.std(0).reshape(FACE, FACE)
        self.shown = self.samples[:EXACT_SHOWN].reshape(-1, FACE, FACE)
        self.generator = generator


def sliced_w2(metrics, samples, posterior, where):
    """Sliced W2 (pixel units) of a method's samples [n, 25, 25] to the exact posterior, on `where` pixels."""
    ours = torch.from_numpy(samples.reshape(len(samples), -1)[:, where])
    exact = torch.from_numpy(posterior.samples[:, where])
    return float(metrics.sliced_wasserstein(ours, exact, posterior.generator))


def floor_w2(metrics, posterior, where, n):
    """The same distance for n fresh exact samples: what a perfect sampler would score (mean of 4 draws)."""
    draws = [(posterior.law.sample(n, posterior.generator).numpy() + 1) / 2 for _ in range(4)]
    return float(np.mean([sliced_w2(metrics, d.reshape(n, FACE, FACE), posterior, where) for d in draws]))


# ---------------------------------------------------------------- drawing

def font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def tile(image):
    return Image.fromarray((np.clip(image, 0, 1) * 255).round().astype(np.uint8)).resize((TILE, TILE), Image.NEAREST)


def draw_sheet(title, groups, blocks, path):
    """groups: [(name, [column labels])]; blocks: [(block title, [(row label, [tile images])], [metric lines])]."""
    label_width, header, small, big = 150, 44, font(13), font(17)
    columns = sum(len(labels) for _, labels in groups)
    group_gap = 12
    width = label_width + columns * (TILE + GAP) + (len(groups) - 1) * group_gap + 10
    height = 40 + header
    for _, rows, lines in blocks:
        height += 26 + len(rows) * (TILE + GAP) + 18 * len(lines) + 14
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((10, 10), title, fill="black", font=big)
    x_of, x = [], label_width
    for name, labels in groups:
        draw.text((x, 40), name, fill="black", font=big)
        for label in labels:
            draw.text((x, 40 + 22), label, fill=(60, 60, 60), font=small)
            x_of.append(x)
            x += TILE + GAP
        x += group_gap
    y = 40 + header
    for block_title, rows, lines in blocks:
        draw.text((10, y + 4), block_title, fill=(20, 20, 120), font=big)
        y += 26
        for row_label, images in rows:
            draw.text((10, y + TILE // 2 - 8), row_label, fill="black", font=small)
            for column, image in enumerate(images):
                if image is not None:
                    sheet.paste(tile(image), (x_of[column], y))
            y += TILE + GAP
        for line in lines:
            draw.text((10, y), line, fill="black", font=small)
            y += 18
        y += 14
    sheet.save(path)


def method_tiles(samples, face):
    """SHOWN samples, the mean and the spread of one method for one face (samples: [seeds, faces, 25, 25])."""
    per_face = samples[:, face]
    shown = list(per_face[:SHOWN]) + [None] * max(0, SHOWN - len(per_face))
    return [*shown, per_face.mean(0), STD_GAIN * per_face.std(0)]


def exact_tiles(posterior):
    return [*posterior.shown, posterior.mean, STD_GAIN * posterior.std]


def method_labels(n):
    return [f"sample {i + 1}" for i in range(SHOWN)] + [f"mean of {n}", f"spread (std x{STD_GAIN:g})"]


EXACT_LABELS = [f"sample {i + 1}" for i in range(EXACT_SHOWN)] + ["mean", f"spread (std x{STD_GAIN:g})"]


# ---------------------------------------------------------------- the two sheets

def inpainting_sheet(engine, pack, output_dir, seeds):
    spec = INPAINTING
    prompt = load_workflow(engine, spec["workflow"])
    faces_count = next(n["inputs"]["faces"] for n in prompt.values() if n["class_type"] == "InverseFacePriorLoader")
    prefixes = [spec["input"][0]] + [prefix for prefix, _ in spec["methods"]]
    runs = run_seeds(engine, prompt, prefixes, seeds, output_dir)
    mixture = pack("demo.face_prior").face_mixture()
    truth = pack("demo.face_prior").held_out_faces()[:faces_count].numpy()
    holes = pack("demo.face_prior").demo_hole_masks(faces_count).numpy() > 0
    metrics, generator = pack("demo.metrics"), torch.Generator().manual_seed(0)
    rows, scores = [], {label: {"psnr": [], "w2": []} for _, label in spec["methods"]}
    scores["exact posterior"] = {"psnr": [], "w2": []}
    for face in range(faces_count):
        known = ~holes[face].reshape(-1)
        x = torch.from_numpy(truth[face].reshape(-1) * 2 - 1)
        posterior = Posterior(mixture, torch.eye(FACE * FACE, dtype=torch.float64)[known], x[known], DING_OBS_STD,
                              generator)
        hole = holes[face]
        images = [runs[spec["input"][0]][0, face]]
        for prefix, label in spec["methods"]:
            images += method_tiles(runs[prefix], face)
            scores[label]["psnr"].append(psnr(runs[prefix][:, face].mean(0), truth[face], hole))
            scores[label]["w2"].append(sliced_w2(metrics, runs[prefix][:, face], posterior, ~known))
        images += exact_tiles(posterior) + [truth[face]]
        scores["exact posterior"]["psnr"].append(psnr(posterior.mean, truth[face], hole))
        scores["exact posterior"]["w2"].append(floor_w2(metrics, posterior, ~known, len(seeds)))
        rows.append((f"face {face + 1}: {MASK_NAMES[face % len(MASK_NAMES)]}", images))
    lines = [summary_line(label, values, "on the hole") for label, values in scores.items()]
    groups = [("input", ["masked (grey)"])] + [(label, method_labels(len(seeds))) for _, label in spec["methods"]]
    groups += [("exact posterior", EXACT_LABELS), ("truth", ["held-out face"])]
    draw_sheet(spec["title"], groups, [(f"{len(seeds)} seeds per method, 20 steps", rows, lines)],
               output_dir / spec["sheet"])
    report(spec["sheet"], lines, output_dir)


def restoration_sheet(engine, pack, output_dir, seeds):
    spec = RESTORATION
    prompt = load_workflow(engine, spec["workflow"])
    loader = next(n for n in prompt.values() if n["class_type"] == "InverseFacePriorLoader")
    faces_count = loader["inputs"]["faces"]
    prefixes = [prefix for task in spec["tasks"] for prefix in (task[1], *task[2])]
    runs = run_seeds(engine, prompt, prefixes, seeds, output_dir)
    face_prior = pack("demo.face_prior")
    mixture = face_prior.face_mixture()
    truth = face_prior.held_out_faces()[:faces_count].numpy()
    faces_image = torch.from_numpy(truth).float()[..., None].repeat(1, 1, 1, 3)
    metrics, generator = pack("demo.metrics"), torch.Generator().manual_seed(0)
    everywhere = np.ones(FACE * FACE, dtype=bool)
    blocks = []
    for operator_class, measured_prefix, restored_prefixes, task_name in spec["tasks"]:
        operator, noise, degrade = degradation_of(engine, prompt, operator_class)
        measurement = engine.nodes["InverseDegradeImage"]().degrade(faces_image, operator, **degrade)[0]
        matrix = operator_matrix(operator)
        scores = {method: {"psnr": [], "w2": []} for method in spec["methods"]}
        scores |= {"exact posterior": {"psnr": [], "w2": []}, "measurement": {"psnr": [], "w2": None}}
        rows = []
        for face in range(faces_count):
            # the 3 measured channels carry independent noise: their mean is y with noise / sqrt(3)
            y = (measurement[face].double().mean(-1) * 2 - 1).reshape(-1)
            posterior = Posterior(mixture, matrix, y, 2 * noise / np.sqrt(3), generator)
            measured = runs[measured_prefix][0, face]
            images = [measured]
            for method, prefix in zip(spec["methods"], restored_prefixes):
                images += method_tiles(runs[prefix], face)
                scores[method]["psnr"].append(psnr(runs[prefix][:, face].mean(0), truth[face]))
                scores[method]["w2"].append(sliced_w2(metrics, runs[prefix][:, face], posterior, everywhere))
            images += exact_tiles(posterior) + [truth[face]]
            scores["exact posterior"]["psnr"].append(psnr(posterior.mean, truth[face]))
            scores["exact posterior"]["w2"].append(floor_w2(metrics, posterior, everywhere, len(seeds)))
            scores["measurement"]["psnr"].append(psnr(measured, truth[face]))
            rows.append((f"face {face + 1}", images))
        lines = [summary_line(label, values, "whole face") for label, values in scores.items()]
        blocks.append((f"{task_name}: {operator.describe()}, noise std {noise:g}", rows, lines))
        report(f"{spec['sheet']} ({task_name})", lines, output_dir)
    groups = [("measurement", ["degraded input"])] + [(method, method_labels(len(seeds))) for method in spec["methods"]]
    groups += [("exact posterior", EXACT_LABELS), ("truth", ["held-out face"])]
    draw_sheet(spec["title"], groups, blocks, output_dir / spec["sheet"])


def degradation_of(engine, prompt, operator_class):
    """The operator node of this class in the prompt, built, with its Degrade node's noise and seed."""
    op_id = next(i for i, n in prompt.items() if n["class_type"] == operator_class)
    node_class = engine.nodes[operator_class]
    operator = getattr(node_class(), node_class.FUNCTION)(**prompt[op_id]["inputs"])[0]
    degrade = next(n for n in prompt.values() if n["class_type"] == "InverseDegradeImage"
                   and n["inputs"]["operator"][0] == op_id)["inputs"]
    return operator, degrade["noise_std"], {"noise_std": degrade["noise_std"], "seed": degrade["seed"]}


def operator_matrix(operator):
    """The linear operator as a matrix [m, 625] acting on flattened grey faces."""
    basis = torch.eye(FACE * FACE).reshape(-1, 1, FACE, FACE)
    return operator.forward(basis).reshape(FACE * FACE, -1).T.to(torch.float64)


def summary_line(label, values, region):
    text = f"{label:>34s}:  PSNR of the mean {np.mean(values['psnr']):5.2f} dB ({region})"
    if values.get("w2"):
        what = "floor (exact vs exact)" if label == "exact posterior" else "sliced W2 to the exact posterior"
        text += f",  {what} {np.mean(values['w2']):.4f}"
    return text


def report(name, lines, output_dir):
    print(f"{name}:")
    for line in lines:
        print("  " + line.strip())


def boot_quietly(log_path):
    """Start ComfyUI with its start-up output (optional nodes that fail to import print tracebacks; they
    are harmless here) in a log file instead of the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(log_path, "w") as log:
        os.dup2(log.fileno(), 2)
        try:
            engine = comfy_harness.boot(with_test_nodes=False)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
    print(f"ComfyUI started ({engine.name}); its start-up log, harmless optional-import tracebacks included: {log_path}")
    return engine


def main():
    output_dir = Path(os.environ.get("OUTPUT_DIR", comfy_harness.REPO_ROOT / "output")).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(range(int(os.environ.get("DEMO_SAMPLES", 8))))
    engine = boot_quietly(output_dir / "engine.log")

    def pack(dotted):
        return importlib.import_module(f"{engine.pack.__name__}.{dotted}")
    inpainting_sheet(engine, pack, output_dir, seeds)
    restoration_sheet(engine, pack, output_dir, seeds)
    print(f"wrote {output_dir / INPAINTING['sheet']} and {output_dir / RESTORATION['sheet']}")
    print(f"engine: {engine.name} ({engine.commit})")


if __name__ == "__main__":
    main()
