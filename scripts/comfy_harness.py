"""Boot a ComfyUI engine in-process on the CPU, load this pack through ComfyUI's own custom-node
loader, and validate / execute API prompts with ComfyUI's executor. Used by the tests, the main
job and the benchmarks.

Engine: upstream ComfyUI when COMFYUI_PATH names a checkout, else the PyPI fork `comfyui==0.0.1`.
An upstream checkout is only read: ComfyUI's base directory (models/, custom_nodes/, input/, output/,
temp/, user/) is a temporary folder, removed at exit, and Python's bytecode goes to sys.pycache_prefix
(PYTHONPYCACHEPREFIX, else <venv>/pycache), so running from a read-only snapshot writes nothing into it.
COMFYUI_GPU=1 lets ComfyUI use its GPU (the default is --cpu). EXTRA_CUSTOM_NODES (os.pathsep-separated folders) loads other packs beside this one (the benchmark's peers).
"""
import asyncio
import atexit
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACK_NAME = "comfyui_inverse_samplers"
TEST_PACK = REPO_ROOT / "tests" / "tiny_nodes"
_ENGINE = None


class Engine:
    def __init__(self, name, commit, node_mappings, pack, custom_nodes_dir):
        self.name = name                  # "upstream" or "fork"
        self.commit = commit
        self.nodes = node_mappings        # NODE_CLASS_MAPPINGS of the whole engine
        self.pack = pack                  # this pack's package, as ComfyUI imported it
        self.custom_nodes_dir = custom_nodes_dir

    def validate(self, prompt):
        """(ok, message, node_errors) from the engine's own validate_prompt."""
        if self.name == "upstream":
            import execution
            result = asyncio.run(execution.validate_prompt("validate", prompt, None))
        else:
            from comfy.cmd import execution
            result = execution.validate_prompt(prompt)
        return result[0], result[1], result[3]

    def execute(self, prompt, output_dir=None):
        """Run a prompt through PromptExecutor; returns the UI outputs {node_id: {...}}."""
        ok, message, node_errors = self.validate(prompt)
        if not ok:
            raise RuntimeError(f"prompt failed validation: {message} {node_errors}")
        if output_dir is not None:
            self._folder_paths().set_output_directory(str(output_dir))
        if self.name == "upstream":
            import execution
            executor = execution.PromptExecutor(_SilentServer(), cache_type=execution.CacheType.CLASSIC)
            executor.execute(prompt, "run", {}, _output_ids(prompt, self.nodes))
            if not executor.success:
                raise RuntimeError(f"execution failed: {_error_summary(executor.status_messages)}")
            return executor.history_result["outputs"]
        from comfy.cmd import execution
        from comfy.distributed.server_stub import ServerStub
        server = _RecordingStub(ServerStub)
        executor = execution.PromptExecutor(server)
        executor.execute(prompt, "run", {}, _output_ids(prompt, self.nodes))
        if not executor.success:
            raise RuntimeError(f"execution failed: {_error_summary(server.errors or executor.status_messages)}")
        return dict(executor.outputs_ui)

    def _folder_paths(self):
        if self.name == "upstream":
            import folder_paths
            return folder_paths
        from comfy.cmd import folder_paths
        return folder_paths


def _error_summary(messages):
    for message in messages:
        data = message[1] if isinstance(message, (list, tuple)) else message
        if isinstance(data, dict) and "exception_message" in data:
            return f"{data.get('node_type')} (node {data.get('node_id')}): {data['exception_message']}"
    return str(messages)


class _SilentServer:
    client_id = None
    last_node_id = None
    last_prompt_id = None

    def send_sync(self, event, data, sid=None):
        pass

    def queue_updated(self):
        pass


def _RecordingStub(base):
    class Stub(base):
        def __init__(self):
            super().__init__()
            self.errors = []

        def send_sync(self, event, data, sid=None):
            if event == "execution_error":
                self.errors.append(data)
    return Stub()


def _output_ids(prompt, node_mappings):
    return [node_id for node_id, node in prompt.items()
            if getattr(node_mappings[node["class_type"]], "OUTPUT_NODE", False)]


def _ensure_torchvision_importable():
    # ComfyUI imports torchvision.transforms at import time only (Cosmos / Cascade); PyPI's
    # torchvision does not load beside the CPU torch wheel, so an import stub stands in.
    try:
        import torchvision  # noqa: F401
    except Exception:
        sys.modules.pop("torchvision", None)
        sys.path.insert(0, str(REPO_ROOT / "scripts" / "stubs"))


def _scratch_dir(prefix):
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)   # does not follow the symlinks inside
    return folder


def _custom_nodes_dir(with_test_nodes, parent=None):
    if parent is None:
        folder = _scratch_dir("inverse_custom_nodes_")
    else:
        folder = parent / "custom_nodes"
        folder.mkdir(parents=True, exist_ok=True)
    (folder / PACK_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
    if with_test_nodes:
        (folder / "inverse_test_nodes").symlink_to(TEST_PACK, target_is_directory=True)
    for extra in filter(None, os.environ.get("EXTRA_CUSTOM_NODES", "").split(os.pathsep)):
        (folder / Path(extra).name).symlink_to(Path(extra).resolve(), target_is_directory=True)
    return folder


def _find_pack(custom_nodes_dir):
    init_file = str(custom_nodes_dir / PACK_NAME / "__init__.py")
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == init_file:
            return module
    raise RuntimeError("the pack was not imported by ComfyUI's custom-node loader (see the log above)")


PACK_SUBPACKAGES = ("nodes", "solvers", "demo", "testbed")


def pack_modules(engine):
    """The pack's package, every module of its subpackages imported: tests and benchmarks reach each by its
    dotted name (pack.solvers.operators), whatever name the engine's loader gave the pack."""
    import pkgutil
    for name in PACK_SUBPACKAGES:
        package = importlib.import_module(f"{engine.pack.__name__}.{name}")
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package.__name__}.{info.name}")
    return engine.pack


def boot(with_test_nodes=True):
    """Start the engine once per process and return it."""
    global _ENGINE
    if _ENGINE is not None:
        return _ENGINE
    _ensure_torchvision_importable()
    upstream = os.environ.get("COMFYUI_PATH")
    if upstream:
        if sys.pycache_prefix is None and not sys.dont_write_bytecode:
            # no __pycache__ inside the checkout: bytecode goes to the venv (or the temp folder)
            in_venv = sys.prefix != sys.base_prefix
            sys.pycache_prefix = str(Path(sys.prefix if in_venv else tempfile.gettempdir()) / "pycache")
        base_dir = _scratch_dir("inverse_comfy_base_")
        custom_nodes_dir = _custom_nodes_dir(with_test_nodes, parent=base_dir)
        sys.path.insert(0, str(Path(upstream).resolve()))
        import comfy.options
        comfy.options.enable_args_parsing(False)
        import comfy.cli_args
        comfy.cli_args.args.cpu = os.environ.get("COMFYUI_GPU") != "1"
        # --base-directory: models/, custom_nodes/, input/ (created at import), output/, temp/, user/
        comfy.cli_args.args.base_directory = str(base_dir)
        import folder_paths
        assert Path(folder_paths.base_path) == base_dir, "folder_paths was imported before the harness"
        folder_paths.folder_names_and_paths["custom_nodes"] = ([str(custom_nodes_dir)], set())
        import nodes
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        mappings = nodes.NODE_CLASS_MAPPINGS
        commit = _git_commit(upstream)
        name = "upstream"
    else:
        custom_nodes_dir = _custom_nodes_dir(with_test_nodes)
        import comfy.options
        comfy.options.enable_args_parsing(False)
        import comfy.cli_args
        comfy.cli_args.args.cpu = os.environ.get("COMFYUI_GPU") != "1"
        from comfy.cmd import folder_paths
        folder_paths.folder_names_and_paths["custom_nodes"] = folder_paths.FolderPathsTuple(
            "custom_nodes", [str(custom_nodes_dir)], set())
        scratch = _scratch_dir("inverse_comfy_fork_")  # the fork writes output/ and temp/ under the cwd otherwise
        folder_paths.set_output_directory(str(scratch / "output"))
        folder_paths.set_temp_directory(str(scratch / "temp"))
        from comfy.nodes.package import import_all_nodes_in_workspace
        mappings = import_all_nodes_in_workspace().NODE_CLASS_MAPPINGS
        commit = "comfyui==0.0.1 (PyPI)"
        name = "fork"
    _ENGINE = Engine(name, commit, mappings, _find_pack(custom_nodes_dir), custom_nodes_dir)
    return _ENGINE


def _git_commit(path):
    if (Path(path) / ".git").exists():
        try:
            return subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except Exception:
            pass
    version = Path(path) / "comfyui_version.py"   # a snapshot without .git (../shared/engines)
    if version.exists():
        for line in version.read_text().splitlines():
            if line.startswith("__version__"):
                return "v" + line.split("=", 1)[1].strip().strip("\"'")
    return "unknown"
