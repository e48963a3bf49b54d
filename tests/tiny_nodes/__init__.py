"""Test-only ComfyUI nodes (never registered by the pack itself): tiny random models of every
family and stand-ins for the loaders, so the example workflows execute with no weights."""
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
