"""Plugins: finders, classifiers and selectors registered by name through Python entry points.

A facility adds its own detector or selection rule as a package that declares, in its
``pyproject.toml``::

    [project.entry-points."gridpilot.selectors"]
    my-rule = "my_package.rules:select_holes"

and a protocol then names it (``selectHoles: {selector: my-rule}``). The built-ins are declared
the same way in this package's ``pyproject.toml``. Code that is not an installed package (a
bench, a notebook) registers in process instead, for as long as the process lives::

    register_plugin("selector", "my-rule", select_holes_my_way)

A name nothing registers is refused when the protocol is loaded.

- a **finder** turns an image into a detection job on the bus (:class:`Finder`); the built-ins
  send ``job.detect.atlas`` to the atlas-detector and ``job.detect.holes`` to the hole-finder;
- a **selector** is a function ``(candidates, n, rng, **options) -> list[Selection]``; a hole
  selector gets the session's hole-policy keywords (those of
  :func:`~orchestrator.policies.holes.intensity_classes`) beside the step's ``options``, and
  ``scores`` when the step names a scorer;
- a **scorer** gives each detected hole of a square a number its selector chooses by
  (:class:`HoleScorer`; ``selectHoles: {selector: my-rule, scorer: my-ice-estimate}``), from
  anything it reads about the square's image, for instance a facility's own ice estimate;
- a **classifier** is a function ``(candidates, **options) -> dict[id, class]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Final, Literal, Protocol

from gridpilot.contracts import DetectAtlasJob, DetectHolesJob, ImageAcquired, JobRequest, subjects
from gridpilot.errors import Conflict, InvalidInput
from gridpilot.storage import ObjectStore

from .policies import HoleCandidate

__all__ = ["PLUGIN_GROUPS", "AtlasDetectorFinder", "Finder", "HoleFinderFinder", "HoleScorer",
           "PluginKind", "SquareImage", "plugin_names", "register_plugin", "resolve_plugin"]

PluginKind = Literal["finder", "classifier", "selector", "scorer"]
PLUGIN_GROUPS: Final[dict[str, str]] = {
    "finder": "gridpilot.finders",
    "classifier": "gridpilot.classifiers",
    "selector": "gridpilot.selectors",
    "scorer": "gridpilot.hole_scorers",
}
#: Plugins registered in this process (:func:`register_plugin`), beside the entry points.
_IN_PROCESS: Final[dict[str, dict[str, Any]]] = {kind: {} for kind in PLUGIN_GROUPS}


@dataclass(frozen=True)
class SquareImage:
    """The square a scorer scores: its image in the session's object store."""

    square_id: str
    image_key: str
    store: ObjectStore


class HoleScorer(Protocol):
    """Scores a square's detected holes; the step's selector gets the result as ``scores``.

    Holes it gives no score are left out of the result (a selector treats them as unscored).
    """

    async def __call__(self, square: SquareImage,
                       holes: Sequence[HoleCandidate]) -> dict[str, float]: ...


class Finder(Protocol):
    """Turns an acquired image into a detection job whose result names the targets found."""

    #: The job kind it submits (its result comes back on ``evt.result.<kind>``).
    job_kind: str

    def build_job(self, image: ImageAcquired, *, session_id: str, grid_id: str,
                  square_id: str | None, hole_diameter_um: float | None,
                  hole_pitch_um: float | None = None) -> JobRequest: ...


class AtlasDetectorFinder:
    """Squares in an atlas, by the atlas-detector service (``job.detect.atlas``)."""

    job_kind = subjects.DETECT_ATLAS

    def build_job(self, image: ImageAcquired, *, session_id: str, grid_id: str,
                  square_id: str | None, hole_diameter_um: float | None,
                  hole_pitch_um: float | None = None) -> JobRequest:
        return DetectAtlasJob(session_id=session_id, grid_id=grid_id, atlas_key=image.key,
                              pixel_size_a=image.pixel_size_a, image_to_stage=image.image_to_stage)


class HoleFinderFinder:
    """Holes in a square image, by the hole-finder service (``job.detect.holes``)."""

    job_kind = subjects.DETECT_HOLES

    def build_job(self, image: ImageAcquired, *, session_id: str, grid_id: str,
                  square_id: str | None, hole_diameter_um: float | None,
                  hole_pitch_um: float | None = None) -> JobRequest:
        if square_id is None:
            raise InvalidInput("the hole finder needs the square the image belongs to")
        return DetectHolesJob(session_id=session_id, grid_id=grid_id, square_key=image.key,
                              square_id=square_id, pixel_size_a=image.pixel_size_a,
                              image_to_stage=image.image_to_stage,
                              hole_diameter_um=hole_diameter_um, hole_pitch_um=hole_pitch_um)


@cache
def _registry(kind: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUPS[kind])}


def register_plugin(kind: PluginKind, name: str, plugin: Any) -> None:
    """Make ``plugin`` available as ``name`` in this process, as an entry point would.

    Registering a name again replaces the earlier in-process plugin.

    Raises:
        Conflict: an installed package already registers ``name`` for ``kind``.
    """
    if name in _registry(kind):
        raise Conflict(f"an installed package already registers a {kind} named {name!r}")
    _IN_PROCESS[kind][name] = plugin


def plugin_names(kind: PluginKind) -> list[str]:
    """The names of every plugin of ``kind``: installed, and registered in this process."""
    return sorted({*_registry(kind), *_IN_PROCESS[kind]})


def resolve_plugin(kind: PluginKind, name: str) -> Any:
    """The plugin object registered as ``name``; a finder class is instantiated.

    Raises:
        InvalidInput: nothing registers ``name`` for ``kind``.
    """
    eps = _registry(kind)
    if name in _IN_PROCESS[kind]:
        obj = _IN_PROCESS[kind][name]
    elif name in eps:
        obj = eps[name].load()
    else:
        raise InvalidInput(f"no {kind} named {name!r} is installed; known: "
                           f"{', '.join(plugin_names(kind)) or 'none'}", field=kind)
    return obj() if kind == "finder" and isinstance(obj, type) else obj
