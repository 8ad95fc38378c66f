"""The pack's node declarations as ComfyUI V3 nodes (`comfy_api.latest`).

Each declaration becomes an `io.ComfyNode` whose schema is built from the declared inputs and
outputs; `execute`, `validate_inputs` and `fingerprint_inputs` call the declaration. Only this
module knows ComfyUI's node API, so a change there is a change here.
"""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .declare import Input, Node, Output

BUILTIN = {"IMAGE": io.Image, "LATENT": io.Latent, "FLOAT": io.Float, "CLIP": io.Clip, "INT": io.Int}


def comfy_type(name: str):
    return BUILTIN.get(name) or io.Custom(name)


def v3_input(declared: Input):
    common = dict(optional=declared.optional, tooltip=declared.tooltip)
    if declared.type == "INT" or declared.type == "FLOAT":
        rule = declared.rule
        cls = io.Int if declared.type == "INT" else io.Float
        extra = {"control_after_generate": True} if declared.control_after_generate else {}
        return cls.Input(declared.name, default=declared.default, min=rule.widget_min, max=rule.max, step=rule.step,
                         **extra, **common)
    if declared.type == "STRING":
        return io.String.Input(declared.name, default=declared.default, multiline=declared.multiline, **common)
    if declared.type == "BOOLEAN":
        return io.Boolean.Input(declared.name, default=declared.default, **common)
    if declared.type == "COMBO":
        options = declared.options()
        return io.Combo.Input(declared.name, options=options,
                              default=declared.default if declared.default in options else options[0], **common)
    return comfy_type(declared.type).Input(declared.name, **common)


def v3_output(declared: Output):
    return comfy_type(declared.type).Output(display_name=declared.name, tooltip=declared.tooltip)


def comfy_node(node: type[Node]) -> type[io.ComfyNode]:
    """The V3 node class of one declaration."""

    def define_schema(cls):
        return io.Schema(node_id=node.id, display_name=node.display_name, category=node.category,
                         description=node.description, inputs=[v3_input(i) for i in node.inputs()],
                         outputs=[v3_output(o) for o in node.outputs], is_output_node=node.output_node)

    def execute(cls, **inputs):
        result = node.run(**inputs)
        return io.NodeOutput(*result.outputs, ui=result.ui)

    def validate_inputs(cls, **inputs):
        return node.validate_inputs(**inputs)

    body = {"define_schema": classmethod(define_schema), "execute": classmethod(execute),
            "validate_inputs": classmethod(validate_inputs), "__doc__": node.description,
            "__module__": node.__module__}
    if hasattr(node, "fingerprint"):
        body["fingerprint_inputs"] = classmethod(lambda cls, **inputs: node.fingerprint(**inputs))
    return type(node.id, (io.ComfyNode,), body)


def extension(nodes) -> ComfyExtension:
    classes = [comfy_node(n) for n in nodes]

    class Show1Extension(ComfyExtension):
        async def get_node_list(self) -> list[type[io.ComfyNode]]:
            return classes

    return Show1Extension()
