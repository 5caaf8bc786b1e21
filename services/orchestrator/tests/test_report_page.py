"""The report page renders its images and overlays in a real browser."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from orchestrator.report_page import ExposureRow, Figure, Overlay, Report, render_report, to_png


def _figure(seed: int) -> Figure:
    rng = np.random.default_rng(seed)
    img = rng.normal(size=(300, 400)).astype(np.float32)
    img[100:150, 200:260] += 8.0  # a bright square the overlay marks
    return Figure("atlas", to_png(img), 400, 300, "test",
                  [Overlay(200, 100, 60, 50, "square 1 (good)")])


def test_to_png_stretches_contrast_and_downsamples_large_images() -> None:
    img = np.linspace(0, 1, 3000 * 10, dtype=np.float32).reshape(10, 3000)
    png = Image.open(io.BytesIO(to_png(img, max_side=1000)))
    arr = np.asarray(png)
    assert png.size == (1000, 3)
    assert arr.min() == 0 and arr.max() == 255


def test_report_page_shows_maps_overlays_and_exposure_figures(chromium: Any, tmp_path: Path) -> None:
    report = Report("gridpilot demo", "sess_1", "scope-1", "grid_1", {"exposures": "1"},
                    maps=[_figure(1)],
                    exposures=[ExposureRow("exp_1", _figure(2), to_png(np.eye(64)),
                                           {"defocus (µm)": "1.52", "CTF fit (Å)": "4.1"})],
                    notes=["targets chosen from ground truth"])
    page_path = tmp_path / "index.html"
    page_path.write_text(render_report(report))
    page = chromium.new_page()
    try:
        page.goto(page_path.as_uri())
        assert page.title() == "gridpilot demo"
        assert page.locator("svg rect").count() == 2
        assert "square 1 (good)" in page.locator("svg text").first.text_content()
        loaded = page.evaluate(
            "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
        assert loaded
        assert "CTF fit (Å)" in page.locator("#exp_1 table").inner_text()
        shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L"))
        assert shot.std() > 10  # the images are really painted, not blank
    finally:
        page.close()
