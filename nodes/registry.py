"""Every node the pack registers with ComfyUI."""
from .demo_nodes import FacePriorLoader
from .ding_inpaint import DInGInpaint
from .ding_sampler import DInGSampler

NODE_CLASS_MAPPINGS = {
    "InverseDInGSampler": DInGSampler,
    "InverseDInGInpaint": DInGInpaint,
    "InverseFacePriorLoader": FacePriorLoader,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "InverseDInGSampler": "DInG Sampler (inpainting)",
    "InverseDInGInpaint": "DInG Inpaint (all-in-one)",
    "InverseFacePriorLoader": "Face Prior Demo Model (exact posterior)",
}
