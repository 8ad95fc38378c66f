"""ComfyUI-Show1: the Show-1 text-to-video cascade as ComfyUI nodes.

ComfyUI imports this file as a package and reads NODE_CLASS_MAPPINGS and WEB_DIRECTORY. The node
module imports without ComfyUI too (tests, tooling). pytest also imports this file while collecting
`tests/`; in a checkout whose folder name is not a Python identifier it does so as a lone module,
where there is no package to import the nodes from, so it gets empty mappings.
"""

if __package__:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
else:
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
