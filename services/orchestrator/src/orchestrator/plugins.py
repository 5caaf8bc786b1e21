"""Plugins: finders, classifiers and selectors registered by name through Python entry points.

A facility adds its own detector or selection rule as a package that declares, in its
``pyproject.toml``::

    [project.entry-points."gridpilot.selectors"]
    my-rule = "my_package.rules:select_holes"

and a protocol then names it (``selectHoles: {selector: my-rule}``). The built-ins are declared
the same way in this package's ``pyproject.toml``. A name no installed package registers is
refused when the protocol is loaded.

- a **finder** turns an image into a detection job on the bus (:class:`Finder`); the built-ins
  send ``job.detect.atlas`` to the atlas-detector and ``job.detect.holes`` to the hole-finder;
- a **selector** is a function ``(candidates, n, rng, **options) -> list[Selection]``;
- a **classifier** is a function ``(candidates, **options) -> dict[id, class]``.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any, Final, Literal, Protocol

from gridpilot.contracts import DetectAtlasJob, DetectHolesJob, ImageAcquired, JobRequest, subjects
from gridpilot.errors import InvalidInput

__all__ = ["PLUGIN_GROUPS", "AtlasDetectorFinder", "Finder", "HoleFinderFinder", "PluginKind",
           "plugin_names", "resolve_plugin"]

PluginKind = Literal["finder", "classifier", "selector"]
PLUGIN_GROUPS: Final[dict[str, str]] = {
    "finder": "gridpilot.finders",
    "classifier": "gridpilot.classifiers",
    "selector": "gridpilot.selectors",
}


class Finder(Protocol):
    """Turns an acquired image into a detection job whose result names the targets found."""

    #: The job kind it submits (its result comes back on ``evt.result.<kind>``).
    job_kind: str

    def build_job(self, image: ImageAcquired, *, session_id: str, grid_id: str,
                  square_id: str | None, hole_diameter_um: float | None) -> JobRequest: ...


class AtlasDetectorFinder:
    """Squares in an atlas, by the atlas-detector service (``job.detect.atlas``)."""

    job_kind = subjects.DETECT_ATLAS

    def build_job(self, image: ImageAcquired, *, session_id: str, grid_id: str,
                  square_id: str | None, hole_diameter_um: float | None) -> JobRequest:
        return DetectAtlasJob(session_id=session_id, grid_id=grid_id, atlas_key=image.key,
                              pixel_size_a=image.pixel_size_a, image_to_stage=image.image_to_stage)


class HoleFinderFinder:
    """Holes in a square image, by the hole-finder service (``job.detect.holes``)."""

    job_kind = subjects.DETECT_HOLES

    def build_job(self, image: ImageAcquired, *, session_id: str, grid_id: str,
                  square_id: str | None, hole_diameter_um: float | None) -> JobRequest:
        if square_id is None:
            raise InvalidInput("the hole finder needs the square the image belongs to")
        return DetectHolesJob(session_id=session_id, grid_id=grid_id, square_key=image.key,
                              square_id=square_id, pixel_size_a=image.pixel_size_a,
                              image_to_stage=image.image_to_stage,
                              hole_diameter_um=hole_diameter_um)


@cache
def _registry(kind: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUPS[kind])}


def plugin_names(kind: PluginKind) -> list[str]:
    """The names of every installed plugin of ``kind``."""
    return sorted(_registry(kind))


def resolve_plugin(kind: PluginKind, name: str) -> Any:
    """The plugin object registered as ``name``; a finder class is instantiated.

    Raises:
        InvalidInput: no installed package registers ``name`` for ``kind``.
    """
    eps = _registry(kind)
    if name not in eps:
        raise InvalidInput(f"no {kind} named {name!r} is installed; known: "
                           f"{', '.join(sorted(eps)) or 'none'}", field=kind)
    obj = eps[name].load()
    return obj() if kind == "finder" and isinstance(obj, type) else obj
