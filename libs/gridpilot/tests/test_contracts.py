"""Message contracts: validation, subjects, and the AsyncAPI document in sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from gridpilot import asyncapi
from gridpilot.contracts import (
    EVENT_TYPES,
    JOB_TYPES,
    SCOPE_VERBS,
    JobFailed,
    PreprocessMovieJob,
    ScopeCommand,
    subjects,
)

_DOC = Path(__file__).resolve().parents[3] / "docs" / "asyncapi.json"


def test_every_job_kind_has_a_request_and_result_type() -> None:
    assert set(JOB_TYPES) == set(subjects.JOB_KINDS)
    for kind, (req, res) in JOB_TYPES.items():
        assert req.model_fields["schema_version"].default == 1
        assert res.model_fields["schema_version"].default == 1
        assert subjects.job_subject(kind).startswith("job.")
        assert subjects.result_subject(kind).startswith("evt.result.")


def test_messages_constructed_in_our_code_refuse_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="typo_field"):
        PreprocessMovieJob(exposure_id="e1", movie_key="m", pixel_size_a=1.0,
                           dose_per_frame_e_per_a2=1.0, typo_field=3)


def test_a_preprocess_job_refuses_zero_dose_and_absurd_pixel_size() -> None:
    with pytest.raises(ValidationError, match="dose_per_frame_e_per_a2"):
        PreprocessMovieJob(exposure_id="e1", movie_key="m", pixel_size_a=1.0,
                           dose_per_frame_e_per_a2=0.0)
    with pytest.raises(ValidationError, match="pixel_size_a"):
        PreprocessMovieJob(exposure_id="e1", movie_key="m", pixel_size_a=0.0,
                           dose_per_frame_e_per_a2=1.0)


def test_ids_with_dots_or_slashes_are_refused() -> None:
    for bad in ("a.b", "../x", "a/b", "", "x" * 65):
        with pytest.raises(ValidationError):
            ScopeCommand(session_id=bad, verb="state")


def test_a_job_round_trips_through_json() -> None:
    job = PreprocessMovieJob(exposure_id="e1", movie_key="sessions/s1/m.mrc", pixel_size_a=1.05,
                             dose_per_frame_e_per_a2=1.2, session_id="s1")
    again = PreprocessMovieJob.model_validate_json(job.model_dump_json())
    assert again == job


def test_scope_command_subjects_refuse_wildcards() -> None:
    assert subjects.scope_command("krios_1", "acquire") == "scope.krios_1.acquire"
    for bad in ("a.b", "*", ">", "a b"):
        with pytest.raises(ValueError, match="scope_id"):
            subjects.scope_command(bad, "acquire")


def test_unknown_job_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown job kind"):
        subjects.job_subject("detect.everything")


def test_job_failed_needs_a_reason_and_no_negative_deliveries() -> None:
    with pytest.raises(ValidationError, match="deliveries"):
        JobFailed(job_id="j", subject="job.x", service="s", error="e", reason="r",
                  retriable=False, deliveries=-1)
    # 0: a job that no worker ever claimed.
    assert JobFailed(job_id="j", subject="job.x", service="s", error="unclaimed", reason="r",
                     retriable=True, deliveries=0).deliveries == 0


def test_asyncapi_document_lists_every_subject() -> None:
    doc = asyncapi.build_asyncapi()
    addresses = {c["address"] for c in doc["channels"].values()}
    for kind in JOB_TYPES:
        assert subjects.job_subject(kind) in addresses
        assert subjects.result_subject(kind) in addresses
    assert set(EVENT_TYPES) <= addresses
    assert "scope.{scope_id}.{verb}" in addresses
    for params in SCOPE_VERBS.values():
        assert params.__name__ in doc["components"]["schemas"]
    # every $ref resolves
    text = json.dumps(doc)
    for ref in {r.split('"')[0] for r in text.split('"$ref": "')[1:]}:
        node = doc
        for part in ref.lstrip("#/").split("/"):
            node = node[part]


def test_checked_in_asyncapi_document_is_up_to_date() -> None:
    assert _DOC.exists(), "docs/asyncapi.json is missing: run `make docs`"
    assert _DOC.read_text() == asyncapi.render(), (
        "docs/asyncapi.json is out of date: run `make docs` and commit it"
    )
