"""The main job: run workflows/ding_face_demo.json headlessly through ComfyUI's executor on the
embedded face prior and write a PNG sheet (rows: held-out faces; columns: masked input, DInG,
ComfyUI's built-in inpainting, ground truth) to OUTPUT_DIR (default ./output)."""
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import comfy_harness  # noqa: E402
from workflow_format import ui_to_api  # noqa: E402

COLUMNS = [("faces_masked_input", "masked input"), ("faces_ding", "DInG"),
           ("faces_comfy_inpaint", "ComfyUI inpaint"), ("faces_ground_truth", "ground truth")]
ZOOM = 8


def saved_images(outputs, output_dir, prefix):
    for node_output in outputs.values():
        files = [Path(output_dir) / f["subfolder"] / f["filename"] for f in node_output.get("images", [])]
        if files and files[0].name.startswith(prefix + "_"):
            return [np.asarray(Image.open(f).convert("L"), dtype=np.float64) / 255.0 for f in files]
    raise RuntimeError(f"the workflow saved no images with prefix {prefix!r}")


def main():
    output_dir = Path(os.environ.get("OUTPUT_DIR", comfy_harness.REPO_ROOT / "output")).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    engine = comfy_harness.boot(with_test_nodes=False)
    workflow = json.loads((comfy_harness.REPO_ROOT / "workflows" / "ding_face_demo.json").read_text())
    outputs = engine.execute(ui_to_api(workflow, engine.nodes), output_dir=output_dir)
    columns = [saved_images(outputs, output_dir, prefix) for prefix, _ in COLUMNS]
    rows = [np.concatenate([np.pad(col[i], 1, constant_values=1.0) for col in columns], axis=1)
            for i in range(len(columns[0]))]
    sheet = np.kron(np.concatenate(rows, axis=0), np.ones((ZOOM, ZOOM)))
    path = output_dir / "face_inpainting_sheet.png"
    Image.fromarray((sheet * 255).round().astype(np.uint8)).save(path)
    truth, ding_images, comfy_images = columns[3], columns[1], columns[2]
    for name, images in (("DInG", ding_images), ("ComfyUI inpaint", comfy_images)):
        rmse = np.sqrt(np.mean([(a - b) ** 2 for a, b in zip(images, truth)]))
        print(f"{name:16s} RMSE to the ground truth face (whole image): {rmse:.4f}")
    print(f"engine: {engine.name} ({engine.commit})")
    print(f"columns: {', '.join(label for _, label in COLUMNS)}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
