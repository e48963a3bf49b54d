"""Every example workflow in the real ComfyUI frontend: upstream ComfyUI (COMFYUI_PATH) serves the pack on
127.0.0.1, headless Chromium loads each workflow with app.loadGraphData, and the test checks that no node
type is missing, that no two nodes overlap at the sizes the frontend renders, that the pack logs no console
error, and that app.graphToPrompt() passes ComfyUI's validate_prompt (what POST /prompt runs) except for the model
files absent here.

Needs: COMFYUI_PATH, a Chromium (CHROMIUM, else `chromium` on PATH: Debian's package) and the Python
`playwright` package (its own browser download is not used). Skipped, with the reason, when one is missing.
Everything ComfyUI writes goes to a temporary base directory; the checkout is only read.
WORKFLOW_SCREENSHOTS=<dir> also saves a square screenshot of each loaded workflow there (the thumbnails).
"""
import concurrent.futures
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from workflow_layout import overlaps

WORKFLOW_DIR = REPO_ROOT / "workflows"
NAMES = sorted(p.name for p in WORKFLOW_DIR.glob("*.json"))
PACK_FOLDER = "comfyui_inverse_samplers"
MISSING_FILE_ERRORS = ("value_not_in_list", "custom_validation_failed")  # ckpt / image names absent here


def _chromium():
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    return path


def _requirements():
    comfy = os.environ.get("COMFYUI_PATH")
    if not comfy or not (Path(comfy) / "main.py").exists():
        return "needs an upstream ComfyUI checkout (COMFYUI_PATH)"
    if not _chromium():
        return "needs Chromium (apt-get install chromium, or CHROMIUM=/path/to/chrome)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "needs the Python package playwright (pip install playwright; no browser download)"
    try:
        import comfyui_frontend_package  # noqa: F401
    except ImportError:
        return "needs comfyui-frontend-package (the version upstream's requirements.txt pins)"
    return None


pytestmark = pytest.mark.skipif(_requirements() is not None, reason=str(_requirements()))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_base")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / PACK_FOLDER).symlink_to(REPO_ROOT, target_is_directory=True)
    settings = base / "user" / "default"
    settings.mkdir(parents=True)
    (settings / "comfy.settings.json").write_text(json.dumps({
        "Comfy.TutorialCompleted": True, "Comfy.Workflow.ShowMissingModelsWarning": False,
        "Comfy.Minimap.Visible": False, "LiteGraph.Canvas.LowQualityRenderingZoomThreshold": 0.2}))
    port = _free_port()
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    try:
        import torchvision
        real_torchvision = "stubs" not in Path(torchvision.__file__).parts
    except Exception:
        real_torchvision = False
    if not real_torchvision:  # ComfyUI and spandrel import torchvision names; PyPI's does not load beside CPU torch
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "scripts" / "stubs"), env.get("PYTHONPATH")]))
    args = [sys.executable, "main.py", "--listen", "127.0.0.1", "--port", str(port), "--disable-api-nodes",
            "--disable-auto-launch", "--base-directory", str(base), "--database-url", "sqlite:///:memory:"]
    if os.environ.get("COMFYUI_GPU") != "1":
        args.append("--cpu")
    log = open(base / "server.log", "w")
    process = subprocess.Popen(args, cwd=os.environ["COMFYUI_PATH"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(url + "/object_info/SaveImage", timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if process.poll() is not None or time.time() > deadline:
                    pytest.fail("ComfyUI did not start: " + (base / "server.log").read_text()[-3000:])
                time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(),
                                             args=["--no-sandbox", "--disable-gpu", "--headless=new"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.console_messages = []
            page.on("console", lambda message: page.console_messages.append((message.type, message.text)))
            page.on("pageerror", lambda error: page.console_messages.append(("error", str(error))))
            page.goto(server, timeout=120_000)
            page.wait_for_function("() => window.app && window.app.graph && window.LiteGraph", timeout=120_000)
            page.wait_for_timeout(1500)
            yield page
        finally:
            browser.close()


def test_the_templates_category_has_a_readable_name(server):
    """The Templates dialog names the pack's category from templateWorkflows.category.<folder> (locales/)."""
    translations = json.loads(urllib.request.urlopen(server + "/i18n", timeout=10).read())
    categories = translations["en"]["templateWorkflows"]["category"]
    assert categories[PACK_FOLDER].startswith("Inverse samplers")


def test_the_pack_serves_its_templates(server):
    listed = json.loads(urllib.request.urlopen(server + "/workflow_templates", timeout=10).read())
    assert sorted(listed.get(PACK_FOLDER, [])) == sorted(name[:-5] for name in NAMES)
    for name in NAMES:  # what the template browser fetches: the graph and its thumbnail
        stem = urllib.request.quote(name[:-5])
        urllib.request.urlopen(f"{server}/api/workflow_templates/{PACK_FOLDER}/{stem}.json", timeout=10).read()
        urllib.request.urlopen(f"{server}/api/workflow_templates/{PACK_FOLDER}/{stem}.jpg", timeout=10).read()


@pytest.mark.parametrize("name", NAMES)
def test_workflow_in_the_frontend(engine, server, page, name):
    workflow = json.loads((WORKFLOW_DIR / name).read_text())
    page.console_messages.clear()
    page.evaluate("async (wf) => { app.graph.clear(); await app.loadGraphData(wf); }", workflow)
    page.wait_for_timeout(500)
    loaded = page.evaluate("""() => ({
        missing: app.graph._nodes.filter(n => !(n.type in LiteGraph.registered_node_types)).map(n => n.type),
        nodes: app.graph._nodes.map(n => ({id: n.id, type: n.type, box: Array.from(n.getBounding())}))})""")
    assert loaded["missing"] == []
    assert len(loaded["nodes"]) == len(workflow["nodes"])
    boxes = [(node["id"], node["box"]) for node in loaded["nodes"]]
    assert overlaps(boxes) == [], f"nodes overlap as rendered: {overlaps(boxes)}"

    prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    assert {node["class_type"] for node in prompt.values()} == {
        node["type"] for node in workflow["nodes"] if node["type"] not in ("Note", "MarkdownNote")}
    # ComfyUI's own validate_prompt, as POST /prompt runs it, in this process (so nothing is queued or run)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # playwright's sync API holds this thread's event loop
        ok, message, node_errors = pool.submit(engine.validate, prompt).result(timeout=60)
    assert ok or node_errors, f"rejected for a reason other than a node's inputs: {message}"
    for node_id, errors in node_errors.items():
        for error in errors["errors"]:
            assert error["type"] in MISSING_FILE_ERRORS and _is_file_input(prompt[node_id], error), \
                f"node {node_id} ({prompt[node_id]['class_type']}): {error}"

    pack_errors = [text for kind, text in page.console_messages
                   if kind == "error" and (PACK_FOLDER in text or "Inverse" in text)]
    assert pack_errors == []
    if os.environ.get("WORKFLOW_SCREENSHOTS"):
        _screenshot(page, Path(os.environ["WORKFLOW_SCREENSHOTS"]) / (name[:-5] + ".png"))


DEMOS = [name for name in NAMES if name.startswith("Demo")]
FIT_ZOOM = 0.6  # the frontend hides node text below about this zoom


@pytest.mark.parametrize("name", DEMOS)
def test_demo_fits_a_screen_and_shows_its_comparison_after_run(server, page, name):
    """At 1920x1080 the frontend's fit-to-view (zoom 0.75 of the fitting scale) keeps the demo readable, and
    Run (queued from the page, as the button does) shows the comparison image in the Compare Images node."""
    workflow = json.loads((WORKFLOW_DIR / name).read_text())
    [compare_id] = [node["id"] for node in workflow["nodes"] if node["type"] == "InverseCompareImages"]
    page.set_viewport_size({"width": 1920, "height": 1080})
    try:
        page.evaluate("async (wf) => { app.graph.clear(); await app.loadGraphData(wf); }", workflow)
        page.wait_for_timeout(500)
        zoom = page.evaluate("""() => { const bs = app.graph._nodes.map(n => n.getBounding());
            const x0 = Math.min(...bs.map(b => b[0])), y0 = Math.min(...bs.map(b => b[1]));
            const x1 = Math.max(...bs.map(b => b[0] + b[2])), y1 = Math.max(...bs.map(b => b[1] + b[3]));
            app.canvas.ds.fitToBounds([x0, y0, x1 - x0, y1 - y0]); app.canvas.setDirty(true, true);
            return app.canvas.ds.scale; }""")
        print(f"\n{name}: fit-to-view zoom at 1920x1080 {zoom:.3f}")
        assert zoom >= FIT_ZOOM, f"fit-to-view zoom {zoom:.3f} hides the text"
        page.evaluate("async () => { await app.queuePrompt(0, 1); }")
        page.wait_for_function("""(id) => { const node = app.graph.getNodeById(id);
            return !!(node && node.imgs && node.imgs.length && node.imgs[0].complete && node.imgs[0].naturalWidth); }""",
                               arg=compare_id, timeout=600_000)
        width, height, source = page.evaluate("""(id) => { const img = app.graph.getNodeById(id).imgs[0];
            return [img.naturalWidth, img.naturalHeight, img.src]; }""", compare_id)
        assert width >= 4 * 25 * 8 and height >= 25 * 8, "the comparison shows the faces enlarged"
        if os.environ.get("WORKFLOW_SCREENSHOTS"):
            folder = Path(os.environ["WORKFLOW_SCREENSHOTS"])
            folder.mkdir(parents=True, exist_ok=True)
            (folder / (name[:-5] + " result.png")).write_bytes(urllib.request.urlopen(source, timeout=30).read())
            page.wait_for_timeout(500)
            page.screenshot(path=str(folder / (name[:-5] + " at fit.png")))
    finally:
        page.set_viewport_size({"width": 1400, "height": 1400})


FILE_INPUTS = {"CheckpointLoaderSimple": ("ckpt_name",), "LoadImage": ("image",), "UNETLoader": ("unet_name",),
               "DualCLIPLoader": ("clip_name1", "clip_name2"), "VAELoader": ("vae_name",)}


def _is_file_input(node, error):
    """A model or image file this machine lacks: the only validation error a shipped workflow may show."""
    name = (error.get("extra_info") or {}).get("input_name")
    return name in FILE_INPUTS.get(node["class_type"], ())


def _screenshot(page, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    page.evaluate("""() => { const c = app.canvas, bs = app.graph._nodes.map(n => n.getBounding());
        const x0 = Math.min(...bs.map(b => b[0])), y0 = Math.min(...bs.map(b => b[1]));
        const x1 = Math.max(...bs.map(b => b[0] + b[2])), y1 = Math.max(...bs.map(b => b[1] + b[3]));
        const rect = c.canvas.getBoundingClientRect();
        const s = Math.min((rect.width - 40) / (x1 - x0), (rect.height - 40) / (y1 - y0), 1.0);
        c.low_quality_zoom_threshold = 0.05;
        c.ds.scale = s; c.ds.offset = [(rect.width / s - (x1 - x0)) / 2 - x0, (rect.height / s - (y1 - y0)) / 2 - y0];
        c.setDirty(true, true); }""")
    page.wait_for_timeout(500)
    page.locator("canvas#graph-canvas").screenshot(path=str(path))
