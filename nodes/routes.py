"""The pack's HTTP routes, registered on ComfyUI's server:

* GET  /show1/readout_nodes  the nodes that show a readout (from their declarations), for the web
                             extension;
* POST /show1/readout        {"prompt": API-format graph} -> the readout of every such node in it;
* GET  /show1/models         the Show-1 models ComfyUI's model manager holds, and this process's
                             resident memory (when no prompt runs, after handing freed heap back
                             to the system; never collecting while a prompt runs).
"""

from __future__ import annotations

import logging

from . import comfy
from .readout import readouts

log = logging.getLogger("show1")


def resident_mib() -> float | None:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return None


def prompt_running(server) -> bool:
    """Whether ComfyUI is executing a prompt (assumed so when its queue cannot be read)."""
    running = getattr(getattr(server, "prompt_queue", None), "currently_running", None)
    return running is None or len(running) > 0


def readout_nodes(declarations: dict) -> list[str]:
    return sorted(name for name, node in declarations.items() if node.readout)


def register(declarations: dict) -> None:
    if not comfy.IN_COMFYUI:
        return
    try:
        from aiohttp import web
        from server import PromptServer
    except ImportError:
        return
    if getattr(PromptServer, "instance", None) is None:
        return
    routes = PromptServer.instance.routes

    @routes.get("/show1/readout_nodes")
    async def get_readout_nodes(request):
        return web.json_response(readout_nodes(declarations))

    @routes.post("/show1/readout")
    async def post_readout(request):
        try:
            body = await request.json()
            return web.json_response(readouts(body.get("prompt") or {}, declarations))
        except Exception as e:  # a half-edited graph must never break the editor
            log.debug("Show-1 readout failed: %s", e)
            return web.json_response({"error": str(e)}, status=400)

    @routes.get("/show1/models")
    async def get_models(request):
        if not prompt_running(PromptServer.instance):  # a collection here would stall a running prompt
            comfy.free_after_failure()  # what was freed goes back to the system before it is measured
        return web.json_response({"models": comfy.loaded_show1_models(), "resident_mib": resident_mib()})
