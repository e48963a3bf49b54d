"""The main job: run the face workflows headlessly through ComfyUI's executor on the embedded face
prior and write PNG sheets (one row per held-out face) to OUTPUT_DIR (default ./output):

- face_inpainting_sheet.png   (workflows/Demo - DInG vs ComfyUI inpainting on faces (no download).json): masked input, DInG, ComfyUI's built-in
  inpainting (SetLatentNoiseMask + euler_ancestral), ground truth;
- face_restoration_sheet.png  (workflows/Demo - Spin deblur and x5 super-resolution on faces (no download).json): blurred + noisy, Spin deblur,
  ×5 down-sampled, Spin ×5 super-resolution, ground truth.
"""
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_harness  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402

SHEETS = {
    "face_inpainting_sheet.png": ("Demo - DInG vs ComfyUI inpainting on faces (no download).json", [
        ("faces_masked_input", "masked input"), ("faces_ding", "DInG"),
        ("faces_comfy_inpaint", "ComfyUI inpaint"), ("faces_ground_truth", "ground truth")]),
    "face_restoration_sheet.png": ("Demo - Spin deblur and x5 super-resolution on faces (no download).json", [
        ("faces_blurred", "blurred + noise"), ("faces_spin_deblur", "Spin deblur"), ("faces_low_res", "x5 down"),
        ("faces_spin_sr", "Spin x5 SR"), ("faces_ground_truth", "ground truth")]),
}
FACE = 25
ZOOM = 8


def saved_images(outputs, output_dir, prefix):
    """The grey images a SaveImage node with this prefix wrote, each shown at the face size."""
    for node_output in outputs.values():
        files = [Path(output_dir) / f["subfolder"] / f["filename"] for f in node_output.get("images", [])]
        if files and files[0].name.startswith(prefix + "_"):
            return [np.asarray(Image.open(f).convert("L").resize((FACE, FACE), Image.NEAREST), dtype=np.float64) / 255.0
                    for f in files]
    raise RuntimeError(f"the workflow saved no images with prefix {prefix!r}")


def write_sheet(columns, path):
    rows = [np.concatenate([np.pad(column[i], 1, constant_values=1.0) for column in columns], axis=1)
            for i in range(len(columns[0]))]
    sheet = np.kron(np.concatenate(rows, axis=0), np.ones((ZOOM, ZOOM)))
    Image.fromarray((sheet * 255).round().astype(np.uint8)).save(path)


def rmse(images, truth):
    return float(np.sqrt(np.mean([(a - b) ** 2 for a, b in zip(images, truth)])))


def main():
    output_dir = Path(os.environ.get("OUTPUT_DIR", comfy_harness.REPO_ROOT / "output")).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    engine = comfy_harness.boot(with_test_nodes=False)
    for sheet_name, (workflow_name, columns) in SHEETS.items():
        workflow = json.loads((comfy_harness.REPO_ROOT / "workflows" / workflow_name).read_text())
        # the info previews are upstream core's PreviewAny, which the PyPI fork lacks: display only, dropped there
        workflow["nodes"] = [n for n in workflow["nodes"] if n["type"] != "PreviewAny" or "PreviewAny" in engine.nodes]
        outputs = engine.execute(ui_to_api(workflow, engine.nodes), output_dir=output_dir)
        images = {label: saved_images(outputs, output_dir, prefix) for prefix, label in columns}
        write_sheet(list(images.values()), output_dir / sheet_name)
        truth = images["ground truth"]
        print(f"{sheet_name}: RMSE to the ground-truth faces (whole image, 0..1 units)")
        for label, column in images.items():
            if label != "ground truth":
                print(f"  {label:18s} {rmse(column, truth):.4f}")
        print(f"  wrote {output_dir / sheet_name}")
    print(f"engine: {engine.name} ({engine.commit})")


if __name__ == "__main__":
    main()
