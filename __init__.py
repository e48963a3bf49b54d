"""Inverse-problem samplers for ComfyUI: DInG inpainting, DInG Restore, Spin and DCDP (decoupled refinement)
for restoration (deblurring, super-resolution, denoising), with measurement-operator nodes and a demo model.

ComfyUI imports this package from custom_nodes/. The math lives in solvers/ (pure torch) and can be
imported without ComfyUI; the node classes in nodes/ need it.
"""
try:
    import comfy.samplers  # noqa: F401  (only register nodes when running inside ComfyUI)
except ImportError:
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}
else:
    from .nodes.registry import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
