"""Pure-torch cores of the pack's posterior samplers. Nothing here imports ComfyUI."""
