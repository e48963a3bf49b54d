"""An upstream checkout (the read-only snapshot in ../shared, or a user's) is only read by the tests:
ComfyUI's writable folders and Python's bytecode cache live outside it. scripts/test.sh also compares
the checkout's full listing before and after the upstream pass."""
import os
import sys
from pathlib import Path

import pytest


def _inside(path, folder):
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


@pytest.fixture(scope="module")
def checkout(engine):
    if engine.name != "upstream":
        pytest.skip("the fork is an installed package, not a checkout")
    return Path(os.environ["COMFYUI_PATH"]).resolve()


def test_comfy_folders_outside_the_checkout(checkout):
    import folder_paths
    assert not _inside(folder_paths.base_path, checkout)
    folders = [folder_paths.get_output_directory(), folder_paths.get_temp_directory(),
               folder_paths.get_input_directory(), folder_paths.get_user_directory()]
    folders += [path for paths, _ in folder_paths.folder_names_and_paths.values() for path in paths]
    assert [f for f in folders if _inside(f, checkout)] == []


def test_bytecode_cache_outside_the_checkout(checkout):
    assert sys.dont_write_bytecode or (sys.pycache_prefix and not _inside(sys.pycache_prefix, checkout))


def _listing(folder):
    # what a write at the top of the checkout or in ComfyUI's usual folders changes (a user's checkout
    # may already have input/, output/, models/, custom_nodes/ of its own)
    entries = [folder, *folder.iterdir()]
    for name in ("input", "output", "temp", "user", "custom_nodes", "models"):
        if (folder / name).is_dir():
            entries += list((folder / name).rglob("*"))
    return {str(e): e.lstat().st_mtime_ns for e in entries}


def test_executing_a_saving_graph_writes_nothing_into_the_checkout(checkout, engine, tmp_path):
    prompt = {
        "1": {"class_type": "TinyLoadImage", "inputs": {"size": 16, "batch": 1}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "isolation"}},
    }
    before = _listing(checkout)
    engine.execute(prompt, output_dir=tmp_path)
    assert list(tmp_path.glob("isolation*.png"))
    assert _listing(checkout) == before
