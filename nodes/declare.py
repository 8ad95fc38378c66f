"""How the pack declares a node, once: its inputs (limits, defaults and tooltips taken from the
stage settings and `show1_core.rules`), outputs, validation and execution.

A declaration is plain Python, independent of ComfyUI's node API: `nodes.v3` turns each one into a
V3 `io.ComfyNode` inside ComfyUI, the readout reads the same declarations, and the tests call them
without ComfyUI. Queue-time validation (`validate_inputs`) and every run (`run`) use the same
checks, so what the browser is told and what the node enforces cannot differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from ..show1_core import rules
from ..show1_core.errors import InputError, Show1Error
from ..show1_core.settings import naming
from . import comfy

WIDGETS = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")


class Show1NodeError(RuntimeError):
    """A Show-1 error, prefixed with the node that raised it."""


@dataclass(frozen=True)
class Input:
    """One input: a widget (INT, FLOAT, STRING, BOOLEAN, COMBO) or a socket of a ComfyUI type."""

    name: str
    type: str
    tooltip: str
    default: Any = None
    optional: bool = False
    rule: rules.Range | None = None  # numbers: bounds, step, validation
    choices: tuple | Callable[[], list[str]] | None = None  # combos; a callable lists them anew each time
    dynamic: bool = False  # a folder listing the node resolves itself (bare names are accepted too)
    multiline: bool = False
    control_after_generate: bool = False
    field: tuple[type, str] | None = None  # the settings class and field this input sets

    @property
    def widget(self) -> bool:
        return self.type in WIDGETS

    def options(self) -> list[str]:
        return list(self.choices()) if callable(self.choices) else list(self.choices or ())

    def validate(self, value) -> None:
        """The input's own rule; None (a link not evaluated yet) passes."""
        if value is None:
            return
        if self.rule is not None:
            self.rule.validate(self.name, value)
        elif self.type == "COMBO" and not self.dynamic:
            rules.validate_choice(self.name, value, self.options())


def number(name: str, rule: rules.Range, default, tooltip: str, optional: bool = False) -> Input:
    return Input(name, "INT" if rule.integer else "FLOAT", tooltip, default, optional, rule,
                 control_after_generate=name == "seed")


def setting(settings, field: str, name: str | None = None, tooltip: str | None = None, default=None,
            optional: bool = False) -> Input:
    """An input for one field of a settings class: its rule, published default and help."""
    f = settings.describe(field)
    name = name or field
    value = f.default if default is None else default
    help_text = tooltip or f.metadata["help"]
    if f.metadata.get("rule") is not None:
        declared = number(name, f.metadata["rule"], value, help_text, optional)
    elif isinstance(value, bool):
        declared = Input(name, "BOOLEAN", help_text, value, optional)
    else:
        declared = Input(name, "COMBO", help_text, value, optional, choices=tuple(f.metadata["choices"]))
    return dataclasses.replace(declared, field=(settings, field))


def combo(name: str, choices, default, tooltip: str, optional: bool = False, dynamic: bool = False) -> Input:
    return Input(name, "COMBO", tooltip, default, optional, choices=choices, dynamic=dynamic)


def socket(name: str, type: str, tooltip: str, optional: bool = False) -> Input:
    return Input(name, type, tooltip, optional=optional)


@dataclass(frozen=True)
class Output:
    type: str
    name: str
    tooltip: str


@dataclass
class Result:
    """What a node returns: its outputs, and what the UI shows (a dict of ComfyUI's ui format)."""

    outputs: tuple = ()
    ui: dict | None = None

    def __getitem__(self, index):
        return self.outputs[index]

    def __iter__(self):
        return iter(self.outputs)


class Node:
    """Base of the pack's node declarations.

    A subclass names its id, display name, category, description and outputs, lists its inputs in
    `inputs()` (in widget order: saved workflows keep widget values by position) and implements
    `execute(**inputs)`. `validate_across(values)` adds rules that tie inputs together; `values`
    holds None for inputs that arrive through links.
    """

    id: ClassVar[str]
    display_name: ClassVar[str]
    category: ClassVar[str]
    description: ClassVar[str]
    outputs: ClassVar[tuple[Output, ...]] = ()
    output_node: ClassVar[bool] = False
    readout: ClassVar[bool] = False  # the web readout shows frames, duration and size under it

    @classmethod
    def inputs(cls) -> list[Input]:
        raise NotImplementedError

    @classmethod
    def input(cls, name: str) -> Input:
        return next(i for i in cls.inputs() if i.name == name)

    @classmethod
    def validate(cls, values: dict) -> None:
        for declared in cls.inputs():
            declared.validate(values.get(declared.name))
        cls.validate_across(values)

    @classmethod
    def validate_across(cls, values: dict) -> None:
        """Rules across inputs."""

    @classmethod
    def validate_inputs(cls, **values) -> bool | str:
        """Queue-time validation: True, or the message the run would raise."""
        try:
            cls.validate(values)
        except Show1Error as e:
            return f"{cls.id}: {e}"
        return True

    @classmethod
    def run(cls, **inputs) -> Result:
        """Validate, execute, and name the node in every error; out-of-memory errors free what the
        failed call held and name the levers."""
        try:
            cls.validate(inputs)
            out = cls.execute(**inputs)
        except Show1Error as e:
            comfy.free_after_failure()
            raise Show1NodeError(f"{cls.id}: {e}") from None
        except BaseException as e:
            if comfy.is_interrupt(e) or not comfy.out_of_memory(e):
                comfy.free_after_failure()
                raise
            comfy.free_after_failure()
            raise Show1NodeError(f"{cls.id}: out of memory on {comfy.compute_device()} "
                                 f"({str(e).splitlines()[0][:200]}); {OOM_LEVERS}") from None
        return out if isinstance(out, Result) else Result(tuple(out))

    @classmethod
    def execute(cls, **inputs):
        raise NotImplementedError

    @classmethod
    def settings(cls, owner: type, values: dict, **fixed):
        """`owner` settings made by name from the inputs that set its fields (`setting` inputs of
        `owner` or of a class it extends), plus `fixed`; its errors name this node's inputs."""
        names = {i.field[1]: i.name for i in cls.inputs()
                 if i.field is not None and issubclass(owner, i.field[0]) and i.name in values}
        given = {field: values[name] for field, name in names.items() if values[name] is not None}
        with naming(lambda f: names.get(f, f)):
            return owner(**given, **fixed)

    @classmethod
    def check_across(cls, owner: type, values: dict) -> None:
        """`owner`'s rules across fields on the node's values (None where a link is not evaluated)."""
        names = {i.field[1]: i.name for i in cls.inputs()
                 if i.field is not None and issubclass(owner, i.field[0]) and i.name in values}
        owner.check_across({field: values[name] for field, name in names.items()}, lambda f: names.get(f, f))

    # what the readout reads (see `readout`); `view` is this node in the graph being edited

    @classmethod
    def frames_out(cls, view) -> int | None:
        """Frames the node yields: by default those of its first frame input."""
        return view.graph.frames(view.first_source(), view.depth + 1)

    @classmethod
    def size_out(cls, view) -> tuple[int, int] | None:
        """(width, height) of what the node yields: by default that of its first frame input."""
        return view.graph.size(view.first_source(), view.depth + 1)

    @classmethod
    def graph_problems(cls, view) -> list[str]:
        """What the graph tells about the node's settings beyond its own validation."""
        return []


OOM_LEVERS = ("lower the memory it needs: set weight_dtype to fp8_e4m3fn or offload to 'window' on the loaders, "
              "enable tile on the VAE nodes, decode fewer frames_per_chunk, use a smaller window or fewer frames")


def require_input(value, kind: type, name: str, source: str) -> None:
    """An input of the right kind before any of its attributes is touched (a model wired where a
    VAE belongs is named, not an AttributeError)."""
    if not isinstance(value, kind):
        raise InputError(f"{name}: got {type(value).__name__}, not {source}; connect {source} here")
