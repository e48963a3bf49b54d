import importlib
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import comfy_harness  # noqa: E402

# Booted before test modules are imported: they import comfy.*, which must see the CPU setting and,
# for upstream, the COMFYUI_PATH checkout on sys.path.
ENGINE = comfy_harness.boot(with_test_nodes=True)


@pytest.fixture(scope="session")
def engine():
    return ENGINE


@pytest.fixture(scope="session")
def pack(engine):
    """The pack's modules, as ComfyUI's custom-node loader imported them."""
    class Modules:
        def __getattr__(self, dotted):
            return importlib.import_module(f"{engine.pack.__name__}.{dotted.replace('__', '.')}")
    return Modules()


@pytest.fixture(scope="session")
def tiny(engine):
    return next(m for name, m in sys.modules.items() if name.endswith("inverse_test_nodes"))


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)


def interrupt_exception():
    """What a cancelled run raises: upstream keeps it in model_management, the fork in comfy.interruption."""
    import comfy.model_management
    try:
        return comfy.model_management.InterruptProcessingException
    except AttributeError:
        return importlib.import_module("comfy.interruption").InterruptProcessingException
