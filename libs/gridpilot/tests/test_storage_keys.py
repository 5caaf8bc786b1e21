"""The key builder produces the documented layout and refuses what could escape it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import gridpilot.storage
from gridpilot.errors import InvalidInput
from gridpilot.storage import keys


def test_key_builders_produce_the_documented_layout() -> None:
    assert keys.session_prefix("s1") == "sessions/s1/"
    assert keys.grid_prefix("s1", "g-2") == "sessions/s1/grids/g-2/"
    assert keys.image_key("s1", "g1", "atlas", "img_1") == "sessions/s1/grids/g1/images/atlas/img_1.mrc"
    assert keys.image_key("s1", None, "record", "cal", "tif") == "sessions/s1/images/record/cal.tif"
    assert keys.truth_key("sessions/s1/grids/g1/images/atlas/img_1.mrc") == \
        "sessions/s1/grids/g1/images/atlas/img_1.truth.json"
    assert keys.exposure_prefix("s1", "g1", "e9") == "sessions/s1/grids/g1/exposures/e9/"
    assert keys.exposure_key("s1", "g1", "e9", "movie", "tif") == \
        "sessions/s1/grids/g1/exposures/e9/movie.tif"
    assert keys.report_key("s1", "summary.html") == "sessions/s1/reports/summary.html"
    assert keys.model_key("holes", "1.2.0", "model.onnx") == "models/holes/1.2.0/model.onnx"
    assert keys.model_prefix("holes") == "models/holes/"


@pytest.mark.parametrize(("product", "ext"), [
    ("movie", "mrc"), ("aligned", "mrc"), ("aligned_dw", "mrc"), ("ctf_png", "png"),
    ("drift_png", "png"), ("ctf_json", "json"), ("something_new", "bin"),
])
def test_exposure_products_get_their_usual_extension(product: str, ext: str) -> None:
    assert keys.exposure_key("s1", "g1", "e1", product).endswith(f"/{product}.{ext}")


def test_every_built_key_passes_validation() -> None:
    built = [
        keys.image_key("S_1-x", "g" * 64, "atlas_tile", "i"),
        keys.truth_key(keys.image_key("s", "g", "view", "v")),
        keys.exposure_key("s", "g", "e", "ctf_json"),
        keys.report_key("s", "run-1.tar.gz"),
        keys.model_key("spa", "v2", "card.md"),
    ]
    for key in built:
        assert keys.validate_key(key) == key


@pytest.mark.parametrize("bad_id", [
    "", "a/b", "..", ".", "a b", "a.b", "x" * 65, "é", "a\x00", "a\n", "\\", "*",
])
def test_every_id_component_is_checked(bad_id: str) -> None:
    builders: list[Callable[[], str]] = [
        lambda: keys.session_prefix(bad_id),
        lambda: keys.grid_prefix("s1", bad_id),
        lambda: keys.image_key("s1", "g1", bad_id, "i1"),
        lambda: keys.image_key("s1", "g1", "atlas", bad_id),
        lambda: keys.exposure_key("s1", "g1", bad_id, "movie"),
        lambda: keys.exposure_key("s1", "g1", "e1", bad_id),
        lambda: keys.model_key(bad_id, "1", "model.onnx"),
    ]
    for build in builders:
        with pytest.raises(InvalidInput, match="must be 1-64 characters"):
            build()


@pytest.mark.parametrize(("call", "says"), [
    (lambda: keys.image_key("s", "g", "atlas", "i", "MRC"), "extension 'MRC'"),
    (lambda: keys.image_key("s", "g", "atlas", "i", "../x"), "extension"),
    (lambda: keys.report_key("s", "../passwd"), "report name '../passwd'"),
    (lambda: keys.report_key("s", "a/b.txt"), "report name"),
    (lambda: keys.model_key("holes", "..", "model.onnx"), "model version '..'"),
    (lambda: keys.model_key("holes", "1..2", "model.onnx"), "model version"),
    (lambda: keys.model_key("holes", ".hidden", "model.onnx"), "model version"),
    (lambda: keys.model_key("holes", "1.0", "../model.onnx"), "model file name"),
    (lambda: keys.truth_key("sessions/s1/../x.mrc"), "'..' segment"),
    (lambda: keys.truth_key("a.truth.json"), "not an image key"),
])
def test_other_key_parts_are_checked_and_named(call: object, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(("key", "says"), [
    ("", "must not be empty"),
    ("/etc/passwd", "'/etc/passwd' is absolute"),
    ("sessions/../../etc/passwd", r"'sessions/\.\./\.\./etc/passwd' has a '\.\.' segment"),
    ("a/./b", r"has a '\.' segment"),
    ("a\\b", "contains a backslash"),
    ("a//b", "'a//b' has an empty segment"),
    ("a/", "has an empty segment"),
    ("a\x00b", "control character U\\+0000"),
    ("a\nb", "control character U\\+000A"),
    ("a\x7fb", "control character U\\+007F"),
    ("a\x85b", "control character U\\+0085"),
    ("a\u2028b", "control character U\\+2028"),
    ("a\ud800b", "control character U\\+D800"),
    ("k" * 1025, "1025 bytes long; the limit is 1024"),
    ("ü" * 600, "1200 bytes long"),
    ("a/" + "b" * 241, "segment longer than 240 bytes"),
])
def test_validate_key_refuses_unsafe_keys_and_names_them(key: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        keys.validate_key(key)


@pytest.mark.parametrize("key", ["a", "a/b.c", "/".join(["k" * 200] * 5 + ["k" * 19]), "sessions/s1/ü-ok.mrc", "a..b/c",
                                 "a/.hidden", "x/y z"])
def test_validate_key_accepts_ordinary_keys(key: str) -> None:
    assert keys.validate_key(key) == key


@pytest.mark.parametrize("prefix", ["", "sessions/", "sessions/s1", "sessions/s1/grids/g1/"])
def test_listing_prefixes_may_be_empty_or_end_with_a_slash(prefix: str) -> None:
    assert keys.validate_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/", "/sessions", "a//", "../", "a/..", "a\\", "a\x00"])
def test_unsafe_listing_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(InvalidInput, match="key prefix"):
        keys.validate_prefix(prefix)


def test_exported_names_are_curated() -> None:
    assert sorted(gridpilot.storage.__all__) == sorted([
        "DEFAULT_CONTENT_TYPE", "MAX_METADATA_BYTES", "ArrayMeta", "LocalStore", "ObjectInfo",
        "ObjectStore", "S3Store", "StorageAccessDenied", "StorageLocation", "StorageSettings",
        "decode_mrc", "encode_mrc", "keys", "mrc", "open_store", "read_image_file",
    ])
    for name in gridpilot.storage.__all__:
        assert hasattr(gridpilot.storage, name), name
    for name in keys.__all__:
        assert hasattr(keys, name), name
