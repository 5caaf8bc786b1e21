"""MRC encoding keeps pixels, pixel size and metadata; corrupt files say so; TIFF stacks read."""

from __future__ import annotations

import struct
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile

from gridpilot.errors import InvalidInput, NotFound
from gridpilot.storage import ArrayMeta, decode_mrc, encode_mrc, read_image_file
from gridpilot.storage.mrc import check_header_pixel_size, check_mrc_header, read_mrc, write_mrc


@pytest.mark.parametrize("dtype", ["float32", "int16", "uint16", "int8", "float16"])
@pytest.mark.parametrize("shape", [(5, 7), (3, 5, 7)])
def test_encode_then_decode_keeps_pixels_dtype_shape_and_pixel_size(
        dtype: str, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(1)
    array = (rng.normal(size=shape) * 50).astype(dtype)
    back, meta = decode_mrc(encode_mrc(array, 0.8317, {"n": 1}))
    np.testing.assert_array_equal(back, array)
    assert back.dtype == np.dtype(dtype) and back.flags.writeable
    assert meta == ArrayMeta(pixel_size_a=0.8317, shape=shape, dtype=dtype, metadata={"n": 1})


def test_the_header_voxel_size_is_set_for_other_mrc_readers(tmp_path: Path) -> None:
    path = tmp_path / "stack.mrcs"
    path.write_bytes(encode_mrc(np.zeros((4, 8, 8), np.float32), 1.06))
    with mrcfile.open(path) as mrc:
        assert mrc.is_image_stack()
        assert mrc.voxel_size.x == pytest.approx(1.06, rel=1e-6)
        assert mrc.voxel_size.y == pytest.approx(1.06, rel=1e-6)
        assert int(mrc.header.mode) == 2
        assert "gridpilot" in mrc.get_labels()[-1]


def test_metadata_with_numpy_values_is_stored_as_plain_json() -> None:
    meta = {"defocus_um": np.float32(-1.5), "count": np.int64(3), "xy": np.array([1, 2])}
    _, back = decode_mrc(encode_mrc(np.zeros((2, 2), np.float32), 1.0, meta))
    assert back.metadata == {"defocus_um": -1.5, "count": 3, "xy": [1, 2]}


@pytest.mark.parametrize(("array", "pixel_size_a", "meta", "says"), [
    (np.zeros((4, 4)), 1.0, None, "dtype float64 has no MRC mode"),
    (np.zeros((4, 4), np.uint8), 1.0, None, "dtype uint8 has no MRC mode"),
    (np.zeros((4,), np.float32), 1.0, None, r"shape \(4,\) must be"),
    (np.zeros((0, 4), np.float32), 1.0, None, "no empty axis"),
    (np.zeros((2, 2, 2, 2), np.float32), 1.0, None, "must be"),
    (np.zeros((4, 4), np.float32), 0.0, None, "pixel_size_a must be a positive number, got 0.0"),
    (np.zeros((4, 4), np.float32), float("nan"), None, "pixel_size_a"),
    (np.zeros((4, 4), np.float32), 1.0, {"x": float("nan")}, "not JSON serialisable"),
    (np.zeros((4, 4), np.float32), 1.0, {"x": object()}, "not JSON serialisable"),
])
def test_what_mrc_cannot_hold_is_refused_with_the_reason(
        array: np.ndarray, pixel_size_a: float, meta: dict[str, object] | None,
        says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        encode_mrc(array, pixel_size_a, meta)


def test_a_volume_must_be_three_dimensional() -> None:
    with pytest.raises(InvalidInput, match="volume must be 3-D"):
        encode_mrc(np.zeros((4, 4), np.float32), 1.0, volume=True)


@pytest.mark.parametrize(("cut", "says"), [
    (lambda d: d[:-5], "truncated or its header corrupt: the header claims 1 x 16 x 16 voxels"),
    (lambda d: d[:500], "Couldn't read enough bytes for MRC header"),
    (lambda d: b"not an mrc file " * 80, "not an MRC file"),
    (lambda d: b"", "0 bytes"),
])
def test_truncated_or_corrupt_bytes_are_invalid_input_with_a_clear_message(
        cut: object, says: str) -> None:
    data = encode_mrc(np.zeros((16, 16), np.float32), 1.0)
    with pytest.raises(InvalidInput, match=f"not a valid MRC file.*{says}"):
        decode_mrc(cut(data))  # type: ignore[operator]


def test_an_mrc_file_from_other_software_decodes_with_empty_metadata(tmp_path: Path) -> None:
    path = tmp_path / "serialem.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.arange(12, dtype=np.int16).reshape(3, 4))
        mrc.voxel_size = 2.5
    array, meta = decode_mrc(path.read_bytes())
    assert array.tolist() == np.arange(12).reshape(3, 4).tolist()
    assert (meta.pixel_size_a, meta.metadata, meta.dtype) == (2.5, {}, "int16")


def test_read_image_file_reads_mrc_files_written_by_write_mrc(tmp_path: Path) -> None:
    path = tmp_path / "a.mrc"
    array = np.random.default_rng(2).normal(size=(2, 6, 6)).astype(np.float32)
    write_mrc(path, array, 4.2, {"tilt_deg": 30.0}, volume=True)
    back, meta = read_image_file(path)
    np.testing.assert_array_equal(back, array)
    assert (meta.pixel_size_a, meta.volume, meta.metadata) == (4.2, True, {"tilt_deg": 30.0})


def test_read_image_file_reads_a_tiff_movie_stack_with_its_pixel_size(tmp_path: Path) -> None:
    movie = np.random.default_rng(4).integers(0, 8, (5, 12, 10)).astype(np.uint8)
    path = tmp_path / "movie.tif"
    # 1.25 Å per pixel is 8e7 pixels per centimetre.
    tifffile.imwrite(path, movie, resolution=(8e7, 8e7), resolutionunit="CENTIMETER")
    back, meta = read_image_file(path)
    np.testing.assert_array_equal(back, movie)
    assert meta.shape == (5, 12, 10) and meta.dtype == "uint8"
    assert meta.pixel_size_a == pytest.approx(1.25)


def test_a_tiff_without_a_pixel_size_reads_as_zero_unless_the_caller_gives_one(
        tmp_path: Path) -> None:
    path = tmp_path / "gain.tiff"
    tifffile.imwrite(path, np.ones((4, 4), np.float32))
    assert read_image_file(path)[1].pixel_size_a == 0.0
    assert read_image_file(path, pixel_size_a=0.83)[1].pixel_size_a == 0.83


def test_read_image_file_names_missing_unknown_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"nothing\.mrc"):
        read_image_file(tmp_path / "nothing.mrc")
    with pytest.raises(NotFound, match=r"nothing\.tif"):
        read_image_file(tmp_path / "nothing.tif")
    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    with pytest.raises(InvalidInput, match=r"unsupported image format '\.png'"):
        read_image_file(tmp_path / "a.png")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InvalidInput, match=r"bad\.tif is not a readable TIFF"):
        read_image_file(tmp_path / "bad.tif")
    (tmp_path / "bad.mrc").write_bytes(b"x" * 2000)
    with pytest.raises(InvalidInput, match=r"bad\.mrc.*not a valid MRC file"):
        read_image_file(tmp_path / "bad.mrc")


def test_a_header_claiming_more_data_than_the_file_holds_is_refused_before_allocation(
        tmp_path: Path) -> None:
    """Regression: a 5 KB file whose header claims 65536³ voxels made the reader allocate ~1 PB."""
    data = bytearray(encode_mrc(np.zeros((8, 8), np.float32), 1.0))
    struct.pack_into("<3i", data, 0, 65536, 65536, 65536)
    raw = bytes(data) + b"\0" * (5120 - len(data))
    with pytest.raises(InvalidInput, match=r"claims 65536 x 65536 x 65536 voxels of mode 2 "
                                           r"\(1.0 PB with the extended header\) but the file has 5.0 KB"):
        check_mrc_header(raw, len(raw))
    with pytest.raises(InvalidInput, match=r"not a valid MRC file.*65536 x 65536 x 65536"):
        decode_mrc(raw)
    (tmp_path / "lie.mrc").write_bytes(raw)
    with pytest.raises(InvalidInput, match="65536 x 65536 x 65536"):
        read_mrc(tmp_path / "lie.mrc")


def test_a_header_with_a_negative_dimension_or_an_unknown_mode_is_refused() -> None:
    data = bytearray(encode_mrc(np.zeros((8, 8), np.float32), 1.0))
    struct.pack_into("<i", data, 0, -8)
    with pytest.raises(InvalidInput, match="not positive"):
        check_mrc_header(bytes(data), len(data))
    struct.pack_into("<2i", data, 0, 8, 8)
    struct.pack_into("<i", data, 12, 99)
    with pytest.raises(InvalidInput, match="unknown MRC mode 99"):
        check_mrc_header(bytes(data), len(data))


@pytest.mark.parametrize(("header_a", "refused"), [(0.0, False), (1.06, False), (1.10, False),
                                                   (1.12, True), (0.5, True), (2.12, True)])
def test_a_header_pixel_size_more_than_five_percent_from_the_job_is_refused(header_a: float,
                                                                            refused: bool) -> None:
    if not refused:
        check_header_pixel_size(header_a, 1.06, key="movie.mrc")
        return
    with pytest.raises(InvalidInput, match=f"movie.mrc says {header_a:.3f}") as info:
        check_header_pixel_size(header_a, 1.06, key="movie.mrc")
    assert info.value.details["field"] == "pixel_size_a"
