"""ComfyUI-Show1: the Show-1 text-to-video cascade as ComfyUI nodes.

ComfyUI imports this file as a package, calls `comfy_entrypoint` (its V3 node API) and serves
WEB_DIRECTORY. The node declarations import without ComfyUI too (tests, tooling). pytest also
imports this file while collecting `tests/`; in a checkout whose folder name is not a Python
identifier it does so as a lone module, where there is no package to import the nodes from.
"""

if __package__:
    from .nodes import NODES, comfy_entrypoint
else:
    NODES = {}

WEB_DIRECTORY = "./web"

__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"] if __package__ else ["WEB_DIRECTORY"]
