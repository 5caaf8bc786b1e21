"""Protocols: what the flow does at each of the four levels, as named steps with arguments.

A protocol is YAML with four levels — ``atlas``, ``square``, ``mediumMag``, ``highMag`` — each a
list of steps, a step being a name or ``{name: {argument: value}}`` (SMARTSCOPE-NOTES §2.10).
Built-ins ``SPA``, ``SPA-precise`` and ``NegativeStain`` ship in ``protocols/*.yaml``. Every
step name, every argument and every plugin a step names is checked when the protocol is
loaded, so a typo is refused before the session starts, never in the middle of a grid:

>>> load_protocol("SPA").steps("square")[1].name
'eucentricHeight'
>>> parse_protocol({"name": "x", "atlas": ["atlas", "autoFocuss"]})
Traceback (most recent call last):
...
gridpilot.errors.InvalidInput: protocol 'x', level atlas, step 2: unknown step 'autoFocuss'; known at this level: atlas, detectSquares, loadGrid, selectSquares
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridpilot.errors import InvalidInput

from .plugins import PluginKind, resolve_plugin

__all__ = ["BUILTIN_PROTOCOLS", "LEVELS", "STEPS", "Level", "Protocol", "ProtocolStep",
           "load_protocol", "parse_protocol"]

Level = Literal["atlas", "square", "mediumMag", "highMag"]
LEVELS: Final[tuple[Level, ...]] = ("atlas", "square", "mediumMag", "highMag")
BUILTIN_PROTOCOLS: Final[tuple[str, ...]] = ("SPA", "SPA-precise", "NegativeStain")


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _NoArgs(_Args):
    pass


class _FinderArgs(_Args):
    finder: str


class _SelectorArgs(_Args):
    selector: str
    #: Options passed to the selector as keywords (its own parameters).
    options: dict[str, Any] = Field(default_factory=dict)


class _HoleSelectorArgs(_SelectorArgs):
    #: A scorer plugin whose per-hole scores the selector gets as ``scores``.
    scorer: str | None = None


class _EucentricArgs(_Args):
    mode: Literal["rough", "refine", "both"] = "rough"


class _AutofocusArgs(_Args):
    #: Measure again only after the stage moved this far since the last autofocus, µm
    #: (0: every target group). Between measurements the defocus still rolls.
    after_distance_um: float = Field(0.0, ge=0.0, le=1000.0)


class _HighMagArgs(_Args):
    #: Integrated single frame instead of a movie (negative stain).
    single_frame: bool = False


#: Level → step name → argument model. The flow implements exactly these.
STEPS: Final[dict[Level, dict[str, type[_Args]]]] = {
    "atlas": {"loadGrid": _NoArgs, "atlas": _NoArgs, "detectSquares": _FinderArgs,
              "selectSquares": _SelectorArgs},
    "square": {"moveStage": _NoArgs, "eucentricHeight": _EucentricArgs, "square": _NoArgs,
               "detectHoles": _FinderArgs, "selectHoles": _HoleSelectorArgs, "groupBIS": _NoArgs},
    "mediumMag": {"tiltToAngle": _NoArgs, "moveStage": _NoArgs, "mediumMagHole": _NoArgs,
                  "autoFocus": _AutofocusArgs, "waitDrift": _NoArgs, "refineZLP": _NoArgs},
    "highMag": {"highMag": _HighMagArgs},
}
#: Arguments that name a plugin, and the plugin kind they name.
_PLUGIN_ARGS: Final[dict[str, PluginKind]] = {"finder": "finder", "selector": "selector",
                                               "scorer": "scorer"}


class ProtocolStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class Protocol(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    levels: dict[str, list[ProtocolStep]]

    def steps(self, level: Level) -> list[ProtocolStep]:
        return self.levels.get(level, [])

    def to_mapping(self) -> dict[str, Any]:
        """The protocol in its YAML form (what :func:`parse_protocol` reads back)."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        for level, steps in self.levels.items():
            out[level] = [{s.name: dict(s.args)} if s.args else s.name for s in steps]
        return out

    def step(self, level: Level, name: str) -> ProtocolStep | None:
        """The first step called ``name`` at ``level``, if the protocol has one."""
        return next((s for s in self.steps(level) if s.name == name), None)


def _parse_step(raw: Any, where: str) -> tuple[str, dict[str, Any]]:
    if isinstance(raw, str):
        return raw, {}
    if isinstance(raw, dict) and len(raw) == 1:
        ((name, args),) = raw.items()
        if args is None:
            args = {}
        if isinstance(name, str) and isinstance(args, dict):
            return name, args
    raise InvalidInput(f"{where}: a step is a name or {{name: {{argument: value}}}}, got {raw!r}")


def parse_protocol(data: dict[str, Any]) -> Protocol:
    """Validate a protocol given as a mapping (from YAML, JSON or the API).

    Raises:
        InvalidInput: an unknown level, step, argument or plugin, naming where it is.
    """
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise InvalidInput("a protocol is a mapping with a 'name' and the levels "
                           f"{', '.join(LEVELS)}")
    name = data["name"]
    unknown = set(data) - {"name", "description", *LEVELS}
    if unknown:
        raise InvalidInput(f"protocol {name!r}: unknown keys {sorted(unknown)}; levels are "
                           f"{', '.join(LEVELS)}")
    levels: dict[str, list[ProtocolStep]] = {}
    for level in LEVELS:
        raw_steps = data.get(level) or []
        if not isinstance(raw_steps, list):
            raise InvalidInput(f"protocol {name!r}, level {level}: expected a list of steps")
        steps = []
        for i, raw in enumerate(raw_steps, start=1):
            where = f"protocol {name!r}, level {level}, step {i}"
            step_name, args = _parse_step(raw, where)
            known = STEPS[level]
            if step_name not in known:
                raise InvalidInput(f"{where}: unknown step {step_name!r}; known at this level: "
                                   f"{', '.join(sorted(known))}", field=step_name)
            try:
                known[step_name].model_validate(args)
            except ValidationError as exc:
                raise InvalidInput(f"{where} ({step_name}): {exc.errors()[0]['msg']} "
                                   f"at {exc.errors()[0]['loc']}") from None
            for arg, kind in _PLUGIN_ARGS.items():
                if args.get(arg) is not None:
                    try:
                        resolve_plugin(kind, args[arg])
                    except InvalidInput as exc:
                        raise InvalidInput(f"{where} ({step_name}): {exc.message}") from None
            steps.append(ProtocolStep(name=step_name, args=args))
        levels[level] = steps
    return Protocol(name=name, description=str(data.get("description", "")), levels=levels)


def load_protocol(name_or_yaml: str) -> Protocol:
    """A built-in protocol by name, or a protocol from YAML text.

    Raises:
        InvalidInput: not a built-in name, not valid YAML, or an invalid protocol.
    """
    if name_or_yaml in BUILTIN_PROTOCOLS:
        text = (files("orchestrator") / "protocols" / f"{name_or_yaml}.yaml").read_text()
    elif "\n" in name_or_yaml or ":" in name_or_yaml:
        text = name_or_yaml
    else:
        raise InvalidInput(f"unknown protocol {name_or_yaml!r}; built-ins: "
                           f"{', '.join(BUILTIN_PROTOCOLS)} (or give the protocol's YAML)")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"the protocol is not valid YAML: {exc}") from None
    return parse_protocol(data)
