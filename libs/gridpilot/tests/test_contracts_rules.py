"""The validation boundary in the contracts: bounds, cross-field rules, keys, versions, renames."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import ValidationError

from gridpilot.contracts import (
    JOB_TYPES,
    DetectHolesJob,
    ExposureOptics,
    MicrographParticlesPicked,
    MovieSuperResolved,
    ObjectKey,
    PickCetJob,
    PreprocessMovieJob,
    PreprocessParams,
    TomogramParticlesPicked,
    TrainAtlasJob,
    TrainCetJob,
    base,
    subjects,
)
from gridpilot.errors import InvalidInput

_MOVIE = "sessions/s1/grids/g1/exposures/e1/movie.mrc"


def _job(**change: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"session_id": "s1", "exposure_id": "e1", "movie_key": _MOVIE,
                              "pixel_size_a": 1.0, "dose_per_frame_e_per_a2": 1.0}
    return {**fields, **change}


@pytest.mark.parametrize(("params", "field"), [
    ({"defocus_max_a": 1e12}, "defocus_max_a"),
    ({"defocus_min_a": -1.0}, "defocus_min_a"),
    ({"patches": (200, 200)}, "patches"),
    ({"patches": (0, 0)}, "patches"),
    ({"patches": (-1, -1)}, "patches"),
    ({"tile_size_px": 1 << 20}, "tile_size_px"),
    ({"ctf_max_res_a": 0.1}, "ctf_max_res_a"),
    ({"ctf_min_res_a": 1e6}, "ctf_min_res_a"),
    ({"align_b_factor_a2": 1e9}, "align_b_factor_a2"),
], ids=lambda v: str(v))
def test_every_science_parameter_is_refused_beyond_its_physical_bounds(
        params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        PreprocessMovieJob.model_validate(_job(params=params))


def test_infinite_or_nan_numbers_in_a_job_are_refused() -> None:
    """Regression: JSON's 1e999 parses as inf, which passes a bare gt=0 bound."""
    for text in ('{"pixel_size_a": 1e999}', '{"params": {"align_b_factor_a2": NaN}}'):
        payload = PreprocessMovieJob.model_validate(_job()).model_dump_json()
        merged = payload[:-1] + "," + text[1:]
        with pytest.raises(ValidationError, match="finite number"):
            PreprocessMovieJob.model_validate_json(merged)
    with pytest.raises(ValidationError, match="finite number"):
        DetectHolesJob.model_validate({"square_key": "k.mrc", "square_id": "sq1", "pixel_size_a": 1.0,
                                       "image_to_stage": [[float("inf"), 0, 0], [0, 1, 0]]})


def test_an_inverted_defocus_range_is_refused_with_both_numbers() -> None:
    with pytest.raises(ValidationError, match=r"defocus_min_a \(40000.0 Å\) must be below "
                                              r"defocus_max_a \(30000.0 Å\)"):
        PreprocessParams(defocus_min_a=40000.0, defocus_max_a=30000.0)
    with pytest.raises(ValidationError, match="defocus_min_a"):
        PreprocessParams(defocus_min_a=30000.0, defocus_max_a=30000.0)


def test_an_inverted_resolution_band_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"band is inverted: ctf_min_res_a \(4.0 Å"):
        PreprocessParams(ctf_min_res_a=4.0, ctf_max_res_a=8.0)
    assert PreprocessParams(ctf_min_res_a=8.0, ctf_max_res_a=4.0).ctf_max_res_a == 4.0


def test_one_patch_per_axis_means_no_local_alignment_and_is_allowed() -> None:
    assert PreprocessParams(patches=(1, 1)).patches == (1, 1)
    assert PreprocessParams(patches=(20, 20)).patches == (20, 20)


def test_the_preprocess_job_takes_its_optics_ranges_from_exposure_optics() -> None:
    for name, info in ExposureOptics.model_fields.items():
        assert PreprocessMovieJob.model_fields[name].metadata == info.metadata, name


def test_object_keys_are_validated_where_they_are_constructed() -> None:
    assert ObjectKey("models/holes/1.0/model.onnx") == "models/holes/1.0/model.onnx"
    for bad in ("", "/etc/passwd", "sessions/../x", "a//b", "a\\b", "a\nb", "x" * 1025):
        with pytest.raises(InvalidInput):
            ObjectKey(bad)
        with pytest.raises(ValidationError, match="movie_key"):
            PreprocessMovieJob.model_validate(_job(movie_key=bad))


def test_a_job_may_only_name_keys_of_its_own_session_or_the_model_registry() -> None:
    ok = PreprocessMovieJob.model_validate(
        _job(gain_key="models/gain/2024-01/gain.mrc"))
    assert isinstance(ok.movie_key, ObjectKey) and ok.gain_key == "models/gain/2024-01/gain.mrc"
    with pytest.raises(ValidationError, match="outside the job's session"):
        PreprocessMovieJob.model_validate(_job(movie_key="sessions/s2/grids/g1/movie.mrc"))
    with pytest.raises(ValidationError, match="gain_key"):
        PreprocessMovieJob.model_validate(_job(gain_key="sessions/s10/gain.mrc"))
    # "sessions/s1" is a prefix of "sessions/s10/": the rule compares whole segments.
    with pytest.raises(ValidationError, match="outside"):
        PreprocessMovieJob.model_validate(_job(movie_key="sessions/s10/movie.mrc"))
    with pytest.raises(ValidationError, match="outside"):
        TrainAtlasJob(session_id="s1", dataset_key="scratch/atlas.tar")
    free = PreprocessMovieJob.model_validate(_job(session_id=None, movie_key="benches/m.mrc"))
    assert free.session_id is None


def test_a_consumer_ignores_an_optional_field_added_by_a_newer_producer(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base, "_LOGGED_UNKNOWN", set())  # each field set is logged once
    job = PreprocessMovieJob.model_validate(_job())
    newer = job.model_dump(mode="json")
    newer["priority"] = "high"
    newer["params"]["fit_cs"] = True
    with caplog.at_level(logging.INFO, logger="gridpilot.contracts.base"):
        again = PreprocessMovieJob.model_validate(newer)
    assert again == job
    assert "priority" in caplog.text and "fit_cs" in caplog.text


def test_our_own_code_cannot_construct_a_message_with_a_misspelt_field() -> None:
    with pytest.raises(ValidationError, match="extra_forbidden") as info:
        PreprocessParams(defocus_maximum_a=1.0)
    assert info.value.errors()[0]["loc"] == ("defocus_maximum_a",)


class _PreprocessMovieJobV2(PreprocessMovieJob):
    """A breaking change of the preprocess job, as a newer producer would send it."""

    schema_version: int = 2


def test_a_message_of_a_newer_schema_version_is_refused_with_a_clear_error() -> None:
    newer = _PreprocessMovieJobV2.model_validate(_job()).model_dump_json()
    with pytest.raises(ValidationError, match="schema_version 2 is newer than this consumer's 1: "
                                              "a breaking change; upgrade the consumer"):
        PreprocessMovieJob.model_validate_json(newer)
    older = PreprocessMovieJob.model_validate(_job()).model_dump_json()
    with pytest.raises(ValidationError, match="upgrade the producer"):
        _PreprocessMovieJobV2.model_validate_json(older)
    with pytest.raises(ValidationError, match="schema_version"):
        PreprocessMovieJob.model_validate(_job(schema_version=True))


def test_each_train_kind_has_its_own_request_result_and_subject() -> None:
    train_kinds = [k for k in subjects.JOB_KINDS if k.startswith("train.")]
    requests = {JOB_TYPES[k][0] for k in train_kinds}
    results = {JOB_TYPES[k][1] for k in train_kinds}
    assert len(requests) == len(results) == len(train_kinds) == 4
    for kind in train_kinds:
        request, result = JOB_TYPES[kind]
        assert request.kind == result.kind == kind
        assert request.model_fields["model_kind"].default == kind.split(".")[1]
    cet = TrainCetJob(session_id="s1", dataset_key="sessions/s1/datasets/cet.tar")
    assert subjects.job_subject(cet.kind) == "job.train.cet"
    with pytest.raises(ValidationError, match="model_kind"):
        TrainCetJob.model_validate({"dataset_key": "d.tar", "model_kind": "spa"})


def test_pick_results_of_spa_and_cet_are_distinct_and_cet_picks_are_3d() -> None:
    assert JOB_TYPES[subjects.PICK_SPA][1] is MicrographParticlesPicked
    assert JOB_TYPES[subjects.PICK_CET][1] is TomogramParticlesPicked
    assert MicrographParticlesPicked.kind == subjects.PICK_SPA
    assert TomogramParticlesPicked.kind == subjects.PICK_CET
    with pytest.raises(ValidationError, match="z_px"):
        TomogramParticlesPicked.model_validate({
            "job_id": "j1", "tomogram_key": "t.mrc", "model_version": "1",
            "particles": [{"x_px": 1.0, "y_px": 2.0, "score": 0.9}]})
    assert PickCetJob.model_fields["tomogram_key"].annotation is ObjectKey


def test_every_result_is_named_in_the_past_tense() -> None:
    # Past participles of the verbs our jobs perform: detected, preprocessed, picked, trained …
    for kind, (_, result) in JOB_TYPES.items():
        assert result.__name__.endswith(("Detected", "Preprocessed", "Resolved", "Picked",
                                         "Trained")), (kind, result.__name__)
    assert JOB_TYPES[subjects.ZSSR_MOVIE][1] is MovieSuperResolved


def test_a_key_with_a_dot_dot_segment_is_refused_in_any_job() -> None:
    with pytest.raises(ValidationError, match="square_key"):
        DetectHolesJob.model_validate({"square_key": "../x", "square_id": "sq1",
                                       "pixel_size_a": 1.0,
                                       "image_to_stage": [[1, 0, 0], [0, 1, 0]]})


def test_the_defocus_search_is_centred_on_the_target() -> None:
    """A session's exposure is searched ±5 kÅ around the defocus it asked for, never below
    3 kÅ, whatever the sign convention of the target."""
    p = PreprocessParams(tile_size_px=256)
    near = p.around_target(-1.8)
    assert (near.defocus_min_a, near.defocus_max_a, near.tile_size_px) == (13000.0, 23000.0, 256)
    assert p.around_target(1.8) == near
    low = p.around_target(-0.5)
    assert low.defocus_min_a == 3000.0 and low.defocus_max_a > low.defocus_min_a
