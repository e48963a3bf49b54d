"""Import stub: ComfyUI imports torchvision.transforms at import time only; tests never call it."""
