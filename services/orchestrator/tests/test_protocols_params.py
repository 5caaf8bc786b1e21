"""Protocols, plugins and session parameters: what is refused at load, with which sentence."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gridpilot.errors import InvalidInput
from orchestrator.params import SessionParams, merged_params
from orchestrator.plugins import HoleFinderFinder, plugin_names, resolve_plugin
from orchestrator.policies import select_holes
from orchestrator.protocols import BUILTIN_PROTOCOLS, LEVELS, load_protocol, parse_protocol


@pytest.mark.parametrize("name", BUILTIN_PROTOCOLS)
def test_every_builtin_protocol_loads_with_all_four_levels(name: str) -> None:
    protocol = load_protocol(name)
    assert protocol.name == name
    assert all(protocol.steps(level) for level in LEVELS)
    assert protocol.step("atlas", "detectSquares") is not None


def test_precise_protocol_refines_eucentric_height_and_focuses_every_group() -> None:
    precise = load_protocol("SPA-precise")
    assert precise.step("square", "eucentricHeight").args == {"mode": "both"}  # type: ignore[union-attr]
    assert precise.step("mediumMag", "autoFocus").args == {"after_distance_um": 0.0}  # type: ignore[union-attr]


def test_a_protocol_with_an_unknown_step_is_refused_at_load_naming_it() -> None:
    yaml_text = "name: mine\natlas: [loadGrid, atlas]\nsquare: [moveStage, squar]\n"
    with pytest.raises(InvalidInput, match=r"level square, step 2: unknown step 'squar'"):
        load_protocol(yaml_text)


def test_a_step_in_the_wrong_level_is_refused() -> None:
    with pytest.raises(InvalidInput, match="unknown step 'highMag'"):
        parse_protocol({"name": "x", "atlas": ["highMag"]})


def test_an_unknown_argument_or_plugin_is_refused_at_load() -> None:
    with pytest.raises(InvalidInput, match=r"eucentricHeight.*(mode|Input should be)"):
        parse_protocol({"name": "x", "square": [{"eucentricHeight": {"mode": "fast"}}]})
    with pytest.raises(InvalidInput, match="no selector named 'nope' is installed"):
        parse_protocol({"name": "x", "square": [{"selectHoles": {"selector": "nope"}}]})
    with pytest.raises(InvalidInput, match="no scorer named 'ice' is installed"):
        parse_protocol({"name": "x", "square": [
            {"selectHoles": {"selector": "intensity-bins", "scorer": "ice"}}]})
    with pytest.raises(InvalidInput, match="unknown protocol 'SPB'"):
        load_protocol("SPB")


def test_builtin_plugins_are_registered_by_entry_point() -> None:
    assert {"atlas-detector", "hole-finder"} <= set(plugin_names("finder"))
    assert {"stratified", "intensity-bins"} <= set(plugin_names("selector"))
    assert resolve_plugin("selector", "intensity-bins") is select_holes
    assert isinstance(resolve_plugin("finder", "hole-finder"), HoleFinderFinder)


def test_session_parameters_have_the_thesis_defaults() -> None:
    p = SessionParams()
    assert (p.atlas_x, p.atlas_y, p.squares_num, p.holes_per_square) == (3, 3, 3, 3)
    assert (p.bis_max_distance_um, p.min_bis_group_size) == (0.0, 1)
    assert (p.target_defocus_min_um, p.target_defocus_max_um, p.step_defocus_um) == (-2.0, -2.0, 0.0)
    assert (p.drift_crit_a_per_s, p.tilt_angle_deg, p.zeroloss_delay_h) == (-1.0, 0.0, -1.0)
    assert p.save_frames and p.offset_targeting and p.offset_distance_um == -1.0
    assert not p.collection_mode and SessionParams(holes_per_square=0).collection_mode


def test_bad_parameters_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValidationError, match="squares_num"):
        SessionParams(squares_num=-1)
    with pytest.raises(ValidationError, match="min_bis_group_size > 1 needs bis_max_distance_um"):
        SessionParams(min_bis_group_size=3)
    with pytest.raises(ValidationError, match="unknown_knob"):
        SessionParams.model_validate({"unknown_knob": 1})


def test_grid_parameters_override_the_session_and_changes_override_both() -> None:
    p = merged_params({"squares_num": 5}, {"squares_num": 2, "holes_per_square": 0},
                      {"holes_per_square": 4})
    assert (p.squares_num, p.holes_per_square) == (2, 4)
