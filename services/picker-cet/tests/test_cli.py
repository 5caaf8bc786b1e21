"""``gridpilot pick cet explore|refine|pick`` on a small twin tomogram, through the shared dispatcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridpilot.cli import main as gridpilot_main
from picker_cet.formats import read_star


def test_explore_refine_pick_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tomo = tmp_path / "t.mrc"
    assert gridpilot_main(["sim", "render", "tomogram", "--seed", "4", "--tomo-shape", "64", "64", "32",
                           "--species", "hollow_shell=6", "--crowders", "4", "--vesicles", "0", "--gold", "1",
                           "--tilt-step-deg", "6", "--out", str(tomo)]) == 0
    assert gridpilot_main(["pick", "cet", "explore", str(tomo), "--out", str(tmp_path / "ex"), "--steps", "2",
                           "--clusters", "2", "--min-diameter-a", "80", "--max-diameter-a", "200"]) == 0
    explored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sum(explored["cluster_sizes"].values()) == explored["candidates"]
    for name in ("exploration.npz", "map.png", "gallery.png", "table.csv"):
        assert (tmp_path / "ex" / name).is_file()
    assert gridpilot_main(["pick", "cet", "refine", str(tomo), "--exploration", str(tmp_path / "ex" / "exploration.npz"),
                           "--cluster", "0", "--diameter-a", "128", "--steps", "2", "--out", str(tmp_path / "m.onnx")]) == 0
    assert gridpilot_main(["pick", "cet", "pick", str(tomo), "--model", str(tmp_path / "m.onnx"), "--threshold", "0",
                           "--out", str(tmp_path / "p.star")]) == 0
    centres, scores = read_star(tmp_path / "p.star")
    assert len(centres) > 0 and scores is not None
    assert len((tmp_path / "p.txt").read_text().splitlines()) == len(centres)
    assert gridpilot_main(["pick", "cet", "refine", str(tomo), "--diameter-a", "128", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "--labels" in capsys.readouterr().err
