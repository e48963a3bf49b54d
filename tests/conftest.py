import contextlib
import copy
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
    """The pack's package as ComfyUI's custom-node loader imported it: pack.solvers.operators, …"""
    return comfy_harness.pack_modules(engine)


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


def press_cancel():
    import comfy.model_management
    comfy.model_management.interrupt_current_processing(True)


@contextlib.contextmanager
def expect_cancelled_run():
    """The block must end in ComfyUI's interrupt exception; the cancel flag is cleared afterwards."""
    import comfy.model_management
    try:
        with pytest.raises(interrupt_exception()):
            yield
    finally:
        comfy.model_management.interrupt_current_processing(False)


def cancelling_operator(operator, method, at_call):
    """A copy of a measurement operator whose `method` ("forward" or "adjoint") presses cancel on its
    at_call-th call (counting every call, in every copy the solvers make). Returns (operator, calls),
    calls["n"] being the count so far."""
    calls = {"n": 0}
    base = type(operator)

    def counted(self, *args):
        calls["n"] += 1
        if calls["n"] == at_call:
            press_cancel()
        return getattr(base, method)(self, *args)
    cancelling = copy.copy(operator)
    cancelling.__class__ = type(f"Cancelling{base.__name__}", (base,), {method: counted})
    return cancelling, calls
