"""Every example workflow: checked against the engine's node registry, in sync with the graphs in
scripts/build_workflows.py, and executed through ComfyUI's executor (loaders swapped for tiny
test models, since no weights exist here)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import build_workflows
from conftest import REPO_ROOT
from oracle_problems import node_defaults
from workflow_format import static_check, ui_to_api
from workflow_layout import overlaps, rendered_boxes

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
            name = inputs["ckpt_name"]
            family = "sd3" if "sd3" in name else "sd15_inpaint" if "inpainting" in name else "sd15"
            node = {"class_type": "TinyCheckpointLoader", "inputs": {"family": family, "seed": 0}}
        elif node["class_type"] == "UNETLoader":
            family = "flux_fill" if "fill" in inputs["unet_name"] else "flux"
            node = {"class_type": "TinyCheckpointLoader", "inputs": {"family": family, "seed": 0}}
        elif node["class_type"] in ("DualCLIPLoader", "CLIPLoader"):
            node = {"class_type": "TinyCLIPLoader", "inputs": {"family": "flux"}}
        elif node["class_type"] == "VAELoader":
            node = {"class_type": "TinyVAELoader", "inputs": {"family": "flux", "seed": 0}}
        elif node["class_type"] == "CLIPTextEncode":
            node = {"class_type": "TinyTextEncode", "inputs": {"clip": inputs["clip"], "text": inputs["text"]}}
        elif node["class_type"] == "LoadImage":
            node = {"class_type": "TinyLoadImage", "inputs": {"size": 64, "batch": 1}}
        swapped[node_id] = node
    return swapped


# Workflows with nodes or widgets the PyPI fork lacks (Flux, FluxGuidance, InpaintModelConditioning's noise_mask)
UPSTREAM_ONLY = {name for name in NAMES if "Flux" in name or "inpainting checkpoint" in name}


def needs_upstream(engine, name):
    if engine.name != "upstream" and name in UPSTREAM_ONLY:
        pytest.skip("uses nodes the PyPI fork comfyui==0.0.1 lacks (no Flux, an older InpaintModelConditioning); "
                    "checked on the upstream pass")


def test_every_workflow_is_listed():
    assert set(NAMES) == set(build_workflows.WORKFLOWS)


# The option sets the example graphs are built from, and the nodes whose widgets they fill: each value must be
# the node's own default (a graph that wants another value overrides it where it is built), so that a changed
# default reaches the examples instead of leaving them on the old one.
WORKFLOW_OPTIONS = {"DING_OPTIONS": ("InverseDInGSampler", "InverseDInGInpaint"),
                    "SPIN_OPTIONS": ("InverseSpinRestore", "InverseSpinSampler"),
                    "DCDP_OPTIONS": ("InverseDCDPRestore", "InverseDCDPSampler"),
                    "DING_RESTORE_OPTIONS": ("InverseDInGRestore", "InverseDInGRestoreSampler")}


@pytest.mark.parametrize("options_name", sorted(WORKFLOW_OPTIONS))
def test_workflow_option_sets_are_the_nodes_widget_defaults(engine, options_name):
    options = getattr(build_workflows, options_name)
    for node_id in WORKFLOW_OPTIONS[options_name]:
        defaults = node_defaults(engine.nodes[node_id])
        stale = {name: (value, defaults.get(name, "no such widget")) for name, value in options.items()
                 if defaults.get(name, "no such widget") != value}
        assert not stale, f"build_workflows.{options_name} against {node_id} (workflow value, node default): {stale}"


@pytest.mark.parametrize("name", NAMES)
def test_workflow_validates_against_the_node_registry(engine, name):
    needs_upstream(engine, name)
    workflow = load(name)
    assert workflow["version"] == 0.4
    assert static_check(workflow, engine.nodes) == []
    assert without_meta(ui_to_api(workflow, engine.nodes)) == without_meta(build_workflows.graph(name))


@pytest.mark.parametrize("name", NAMES)
def test_workflow_file_is_what_the_build_script_writes(engine, name):
    """Layout included; node sizes follow upstream's node definitions, so only upstream can regenerate them."""
    if engine.name != "upstream":
        pytest.skip("layout sizes come from upstream's node definitions (COMFYUI_PATH)")
    assert (WORKFLOW_DIR / name).read_text() == build_workflows.render(name, engine.nodes)


@pytest.mark.parametrize("name", NAMES)
def test_workflow_reads_at_a_glance(engine, name):
    """A note, no overlap at the stored (= rendered, see test_browser.py) sizes, nodes left of what they feed,
    download metadata on model loaders, every info output shown, a thumbnail beside it."""
    workflow = load(name)
    nodes = {node["id"]: node for node in workflow["nodes"]}
    assert any(node["type"] in ("Note", "MarkdownNote") and node["widgets_values"][0].strip() for node in nodes.values())
    assert overlaps(rendered_boxes(workflow)) == []
    for _, source, _, target, _, _ in workflow["links"]:
        assert nodes[source]["pos"][0] + nodes[source]["size"][0] <= nodes[target]["pos"][0], (source, target)
    for node in nodes.values():
        if node["type"] in build_workflows.MODEL_LOADERS:
            names, directory = build_workflows.MODEL_LOADERS[node["type"]]
            models = node["properties"]["models"]
            assert [model["name"] for model in models] == node["widgets_values"][:len(names)]
            for model in models:
                assert model["directory"] == directory
                assert model["url"].startswith("https://huggingface.co/") and model["url"].endswith(model["name"])
        for slot in node.get("outputs", []):
            if slot["name"] == "info" and not name.startswith("Demo"):  # the demos' notes give their calls
                assert any(nodes[link[3]]["type"] == "PreviewAny" for link in workflow["links"] if link[0] in slot["links"])
    assert (WORKFLOW_DIR / (name[:-5] + ".jpg")).exists()


@pytest.mark.parametrize("name", [n for n in NAMES if "inpaint" in n.lower()])
def test_inpainting_workflows_keep_the_pixels_outside_the_mask(engine, name):
    """SamplerCustom-form (and Spin) inpainting ends with ImageCompositeMasked on the loaded image and its
    mask (saved, or shown side by side); the all-in-one DInG node pastes back itself."""
    prompt = build_workflows.graph(name)
    shown = [node["inputs"]["images"][0] for node in prompt.values() if node["class_type"] == "SaveImage"]
    shown += [source[0] for node in prompt.values() if node["class_type"] == "InverseCompareImages"
              for name, source in node["inputs"].items() if name.startswith("image_")]
    for node in prompt.values():
        if node["class_type"] == "InverseDInGInpaint":
            assert node["inputs"]["paste_back"] is True
    composites = {node_id for node_id, node in prompt.items() if node["class_type"] == "ImageCompositeMasked"}
    if not any(node["class_type"] == "InverseDInGInpaint" for node in prompt.values()):
        assert composites and any(source in composites for source in shown)


@pytest.mark.parametrize("name", NAMES)
def test_workflow_executes(engine, name, tmp_path):
    needs_upstream(engine, name)
    prompt = with_tiny_loaders(ui_to_api(load(name), engine.nodes))
    outputs = engine.execute(prompt, output_dir=tmp_path)
    shown = [image for node_output in outputs.values() for image in node_output.get("images", [])]
    folders = {"output": tmp_path, "temp": Path(engine._folder_paths().get_temp_directory())}
    assert shown and all((folders[image["type"]] / image["subfolder"] / image["filename"]).exists() for image in shown)


def test_a_type_mismatch_is_reported(engine):
    workflow = load("DInG inpaint SD1.5 (SamplerCustom).json")
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
