"""ComfyUI-Show1: the Show-1 text-to-video cascade as ComfyUI nodes.

ComfyUI imports this file as a package and reads NODE_CLASS_MAPPINGS and WEB_DIRECTORY. The node
module imports without ComfyUI too (tests, tooling), so nothing here is guarded.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
