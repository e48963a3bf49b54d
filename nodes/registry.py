"""Every node the pack registers with ComfyUI."""
from .compare_nodes import CompareImages
from .dcdp_nodes import DCDP_NODES
from ..demo.nodes import FacePriorLoader
from .ding_nodes import DInGInpaint, DInGSampler
from .ding_restore_nodes import DING_RESTORE_NODES
from .checks import finite_float_widgets
from .operator_nodes import OPERATOR_NODES
from .outpaint_nodes import OutpaintPad
from .spin_nodes import SPIN_NODES

NODES = {
    "InverseDInGSampler": (DInGSampler, "DInG Sampler (inpainting)"),
    "InverseDInGInpaint": (DInGInpaint, "DInG Inpaint (all-in-one)"),
    "InverseOutpaintPad": (OutpaintPad, "Pad Image for Outpainting (keeps the photo exact)"),
    **DING_RESTORE_NODES,
    **SPIN_NODES,
    **DCDP_NODES,
    **OPERATOR_NODES,
    "InverseCompareImages": (CompareImages, "Compare Images (labelled grid)"),
    "InverseFacePriorLoader": (FacePriorLoader, "Face Prior Demo Model (exact posterior)"),
}

# every FLOAT widget is checked for NaN / inf where it enters the pack
NODE_CLASS_MAPPINGS = {node_id: finite_float_widgets(node) for node_id, (node, _) in NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {node_id: name for node_id, (_, name) in NODES.items()}
