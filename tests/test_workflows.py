"""Every example workflow: checked against the engine's node registry, in sync with the graphs in
scripts/build_workflows.py, and executed through ComfyUI's executor (loaders swapped for tiny
test models, since no weights exist here)."""
import json
import os
import subprocess
import sys

import pytest

import build_workflows
from conftest import REPO_ROOT
from workflow_format import static_check, ui_to_api

WORKFLOW_DIR = REPO_ROOT / "workflows"
NAMES = sorted(p.name for p in WORKFLOW_DIR.glob("*.json"))


def load(name):
    return json.loads((WORKFLOW_DIR / name).read_text())


def without_meta(prompt):
    return {node_id: {"class_type": node["class_type"], "inputs": node["inputs"]} for node_id, node in prompt.items()}


def with_tiny_loaders(prompt):
    """Swap the weight loaders for the test pack's tiny models; everything else runs as shipped."""
    swapped = {}
    for node_id, node in prompt.items():
        inputs = node["inputs"]
        if node["class_type"] == "CheckpointLoaderSimple":
            family = "sd3" if "sd3" in inputs["ckpt_name"] else "sd15"
            node = {"class_type": "TinyCheckpointLoader", "inputs": {"family": family, "seed": 0}}
        elif node["class_type"] == "CLIPTextEncode":
            node = {"class_type": "TinyTextEncode", "inputs": {"clip": inputs["clip"], "text": inputs["text"]}}
        elif node["class_type"] == "LoadImage":
            node = {"class_type": "TinyLoadImage", "inputs": {"size": 64, "batch": 1}}
        swapped[node_id] = node
    return swapped


def test_every_workflow_is_listed():
    assert set(NAMES) == set(build_workflows.WORKFLOWS)


@pytest.mark.parametrize("name", NAMES)
def test_workflow_validates_against_the_node_registry(engine, name):
    workflow = load(name)
    assert workflow["version"] == 0.4
    assert static_check(workflow, engine.nodes) == []
    assert without_meta(ui_to_api(workflow, engine.nodes)) == without_meta(build_workflows.WORKFLOWS[name]())


@pytest.mark.parametrize("name", NAMES)
def test_workflow_executes(engine, name, tmp_path):
    prompt = with_tiny_loaders(ui_to_api(load(name), engine.nodes))
    outputs = engine.execute(prompt, output_dir=tmp_path)
    saved = [image for node_output in outputs.values() for image in node_output.get("images", [])]
    assert saved and all((tmp_path / image["subfolder"] / image["filename"]).exists() for image in saved)


def test_a_type_mismatch_is_reported(engine):
    workflow = load("ding_inpaint_sd15_sampler_custom.json")
    link = next(link for link in workflow["links"] if link[5] == "VAE")
    model_source = next(link for link in workflow["links"] if link[5] == "MODEL")
    link[1], link[2], link[5] = model_source[1], model_source[2], "MODEL"   # a MODEL wired into a VAE socket
    assert any("expects VAE" in problem for problem in static_check(workflow, engine.nodes))


def test_main_job_writes_the_sheet(tmp_path):
    env = dict(os.environ, OUTPUT_DIR=str(tmp_path), DEMO_SAMPLES="2")  # 2 seeds: the sheets and metrics, quickly
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "run_demo.py")], env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (tmp_path / "face_inpainting_sheet.png").exists() and (tmp_path / "face_restoration_sheet.png").exists()
    assert "PSNR of the mean" in result.stdout and "sliced W2 to the exact posterior" in result.stdout
