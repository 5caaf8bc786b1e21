"""Turn a demo session's results into a :class:`~gridpilot.demo.report.Report`.

Pixels come from object storage (the MRC files the gateway and preprocess stored); overlays and
figures come from the ground truth and the preprocess results.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gridpilot.storage import ObjectStore

from .report import ExposureRow, Figure, Overlay, Report, to_png
from .session import DemoResult, ExposureOutcome, target_id

__all__ = ["build_report"]

_CLASS_COLOURS = {"good": "#2ecc71", "small": "#e67e22", "dry": "#f1c40f", "contaminated": "#9b59b6",
                  "cracked": "#e74c3c", "partial": "#3498db", "broken": "#95a5a6"}


async def _figure(store: ObjectStore, key: str, title: str, caption: str,
                  overlays: list[Overlay] | None = None) -> Figure:
    array, _ = await store.get_array(key)
    img = np.asarray(array, dtype=np.float32)
    if img.ndim == 3:
        img = img.sum(axis=0)
    h, w = img.shape
    return Figure(title, to_png(img), w, h, caption, overlays or [])


def _box(record: dict[str, Any], label: str, colour: str) -> Overlay:
    c0, r0, c1, r1 = record["box_px"]
    return Overlay(c0, r0, c1 - c0, r1 - r0, label, colour)


def _circle(record: dict[str, Any], label: str, colour: str = "#2ecc71") -> Overlay:
    (cx, cy), r = record["centre_px"], record["radius_px"]
    return Overlay(cx - r, cy - r, 2 * r, 2 * r, label, colour, circle=True)


async def build_report(result: DemoResult, store: ObjectStore) -> Report:
    """Gather images from storage and figures from results into a report."""
    plan = result.plan
    atlas_overlays = [_box(s, f"{s['id']} ({s['square_class']})",
                           _CLASS_COLOURS.get(s["square_class"], "#fff"))
                      for s in result.chosen_squares]
    maps = [await _figure(store, result.atlas.key, "Atlas",
                          f"{result.atlas.shape[-1]}×{result.atlas.shape[-2]} px, "
                          f"{result.atlas.pixel_size_a / 1e4:.2f} µm/px; chosen squares boxed",
                          atlas_overlays)]
    for visit in result.visits:
        holes = [_circle(h, f"{h['ice_nm']:.0f} nm") for h in visit.holes]
        maps.append(await _figure(store, visit.image.key, f"Square {visit.square['id']}",
                                  f"{visit.image.pixel_size_a / 10:.0f} nm/px; chosen holes "
                                  "circled with their true ice thickness", holes))
        for view, truth in visit.views:
            target = [_circle(h, f"target, {h['ice_nm']:.0f} nm") for h in truth.get("holes", [])
                      if target_id(h["id"]) == view.target_id and h.get("centre_px") is not None]
            maps.append(await _figure(store, view.key, f"View of {view.target_id}",
                                      f"{view.pixel_size_a / 10:.1f} nm/px; the target hole circled",
                                      target))
    rows = [await _exposure_row(store, x) for x in result.exposures]
    done = [x for x in result.exposures if x.result is not None]
    spec = result.atlas_truth.get("grid_spec", {})
    summary = {
        "grid kind": f"slot {plan.slot}: {spec.get('mesh', '?')}-mesh "
                     f"{spec.get('film_material', '')} {spec.get('hole_type', '')}",
        "squares visited": str(len(result.visits)),
        "exposures": f"{len(result.exposures)} ({len(done)} preprocessed)",
        "wall time": f"{result.wall_s:.0f} s",
        "microscope time (twin clock)": f"{result.scope_clock_s / 60:.1f} min",
    }
    return Report(f"gridpilot demo — {plan.session_id}", plan.session_id, plan.scope_id,
                  plan.grid_id, summary, maps, rows, result.notes)


async def _exposure_row(store: ObjectStore, x: ExposureOutcome) -> ExposureRow:
    truth = x.truth.get("exposure", {})
    true_df = 0.5 * (truth.get("defocus1_a", 0.0) + truth.get("defocus2_a", 0.0))
    figures: dict[str, str] = {
        "pixel size": f"{x.image.pixel_size_a:.2f} Å",
        "frames / dose": f"{x.image.frame_count} / {x.image.dose_e_per_a2 or 0:.0f} e/Å²",
        "target defocus": f"{x.image.target_defocus_um or 0:.2f} µm",
        "true defocus (twin)": f"{true_df / 1e4:.3f} µm",
        "true astigmatism (twin)": f"{abs(truth.get('defocus1_a', 0.0) - truth.get('defocus2_a', 0.0)):.0f} Å "
                                   f"at {np.rad2deg(truth.get('astig_angle_rad', 0.0)):.0f}°",
        "true ice (twin)": f"{truth.get('ice_nm', 0.0):.0f} nm",
    }
    diagnostic = None
    key = x.image.key
    if x.result is not None:
        ctf, motion = x.result.ctf, x.result.motion
        df = 0.5 * (ctf.defocus1_a + ctf.defocus2_a)
        figures.update({
            "defocus (fit)": f"{df / 1e4:.3f} µm ({'confident' if ctf.confident else 'not confident'})",
            "astigmatism": f"{abs(ctf.defocus1_a - ctf.defocus2_a):.0f} Å at {ctf.astig_angle_deg:.0f}°",
            "CTF fit": f"{ctf.fit_resolution_a:.1f} Å (cc {ctf.cc:.2f})",
            "drift total / early": f"{motion.total_drift_a:.1f} / {motion.early_drift_a:.1f} Å",
        })
        if x.result.ice_thickness_nm is not None:
            figures["ice (estimate)"] = f"{x.result.ice_thickness_nm:.0f} nm ({x.result.ice_method})"
        if not ctf.confident and ctf.reason:
            figures["why not confident"] = ctf.reason
        key = x.result.aligned_dw_key
        if x.result.diagnostic_png_key:
            diagnostic = await store.get_bytes(x.result.diagnostic_png_key)
    elif x.failure is not None:
        figures["preprocess"] = f"failed: {x.failure.reason}"
    image = await _figure(store, key, f"Exposure {x.image.image_id}",
                          "aligned, dose-weighted sum" if x.result else "frame sum")
    return ExposureRow(x.image.image_id, image, diagnostic, figures)
