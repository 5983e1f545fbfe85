"""`sniff` names formats from magic bytes alone, so errors can say what was uploaded."""

from __future__ import annotations

import gzip
import io
import struct
import wave
import zipfile
from collections.abc import Callable

import pillow_heif
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, features

from lightkeeper.media import FORMATS, IMAGE_FORMATS, describe, sniff
from lightkeeper.media.sniff import ends_early, ftyp_brands

PhotoBytes = Callable[..., bytes]


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    """An ISO-BMFF file start: an `ftyp` box, then the start of an empty `meta` box."""
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body + b"\x00\x00\x00\x08free"


@pytest.mark.parametrize("fmt", ["jpeg", "png", "gif", "webp", "bmp", "tiff"])
def test_every_pillow_written_format_is_recognised(photo_bytes: PhotoBytes, fmt: str) -> None:
    assert sniff(photo_bytes(fmt, width=64, height=48)) == fmt


def test_heic_written_by_libheif_is_recognised(photo_bytes: PhotoBytes) -> None:
    # pillow_heif needs an HEVC encoder (x265) to write HEIC; this venv has one.
    assert pillow_heif.libheif_info()["HEIF"], "no HEIC encoder: HEIF tests would be vacuous"
    assert sniff(photo_bytes("heif", width=64, height=48)) == "heif"


@pytest.mark.skipif(not features.check("avif"), reason="Pillow built without AVIF")
def test_avif_written_by_pillow_is_recognised(photo_bytes: PhotoBytes) -> None:
    assert sniff(photo_bytes("avif", width=64, height=48)) == "avif"


def test_image_formats_are_the_decodable_images() -> None:
    assert {"jpeg", "png", "gif", "webp", "bmp", "tiff", "heif", "avif"} == IMAGE_FORMATS
    assert all(FORMATS[name].kind == "image" for name in IMAGE_FORMATS)


@pytest.mark.parametrize(
    "prefix",
    [b"II*\x00\x08\x00\x00\x00", b"MM\x00*\x00\x00\x00\x08", b"II+\x00\x08\x00\x00\x00"],
    ids=["little-endian", "big-endian", "bigtiff"],
)
def test_tiff_byte_orders_and_bigtiff(prefix: bytes) -> None:
    assert sniff(prefix + bytes(32)) == "tiff"


def test_pillow_bigtiff_is_recognised() -> None:
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, "TIFF", big_tiff=True)
    assert buffer.getvalue()[:4] == b"II+\x00"
    assert sniff(buffer.getvalue()) == "tiff"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (ftyp(b"heic", b"mif1", b"heic"), "heif"),
        (ftyp(b"heix", b"mif1"), "heif"),
        (ftyp(b"hevc", b"msf1"), "heif"),
        (ftyp(b"mif1", b"heic"), "heif"),
        (ftyp(b"msf1", b"hevc"), "heif"),
        (ftyp(b"mif1"), "heif"),
        (ftyp(b"avif", b"mif1", b"miaf"), "avif"),
        (ftyp(b"avis", b"msf1"), "avif"),
        (ftyp(b"mif1", b"miaf", b"avif"), "avif"),
        (ftyp(b"isom", b"iso2", b"avc1", b"mp41"), "mp4"),
        (ftyp(b"mp42", b"isom"), "mp4"),
        (ftyp(b"qt  ", b"qt  "), "mov"),
        (ftyp(b"M4A ", b"isom"), "m4a"),
        (ftyp(b"3gp4", b"isom"), "3gp"),
        (ftyp(b"isom", b"mif1", b"heic"), "heif"),
    ],
)
def test_iso_bmff_brands_decide_heif_avif_and_video(header: bytes, expected: str) -> None:
    assert sniff(header) == expected


def test_ftyp_with_64_bit_size_is_read() -> None:
    body = b"avif" + bytes(4) + b"mif1"
    header = struct.pack(">I", 1) + b"ftyp" + struct.pack(">Q", 16 + len(body)) + body
    assert ftyp_brands(header) == (b"avif", frozenset({b"avif", b"mif1"}))
    assert sniff(header) == "avif"


def test_ftyp_box_too_short_for_a_brand_is_not_an_image() -> None:
    assert sniff(b"\x00\x00\x00\x0cftypheic") != "heif"


def _zip_with_a_jpeg(photo_bytes: PhotoBytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("photo.jpg", photo_bytes("jpeg", width=32, height=32))
    return buffer.getvalue()


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(800))
    return buffer.getvalue()


NON_IMAGES: dict[str, bytes] = {
    "pdf": b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "postscript": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n",
    "gzip": gzip.compress(b"hello"),
    "mp4": ftyp(b"isom", b"isom", b"iso2", b"avc1", b"mp41"),
    "mov": ftyp(b"qt  ", b"qt  "),
    "webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm",
    "mkv": b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x88matroska",
    "wav": _wav(),
    "avi": b"RIFF\x00\x10\x00\x00AVI LIST",
    "ogg": b"OggS\x00\x02" + bytes(22),
    "flac": b"fLaC\x00\x00\x00\x22" + bytes(34),
    "mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00",
    "elf": b"\x7fELF\x02\x01\x01" + bytes(57),
    "exe": b"MZ" + bytes(58) + struct.pack("<I", 64) + b"PE\x00\x00" + bytes(20),
    "zip": b"PK\x05\x06" + bytes(18),
    "7z": b"7z\xbc\xaf\x27\x1c\x00\x04",
    "sqlite": b"SQLite format 3\x00" + bytes(84),
    "html": b"<!DOCTYPE html>\n<html><body>hello</body></html>",
    "xml": b'<?xml version="1.0"?>\n<rss><channel/></rss>',
    "svg": b'\xef\xbb\xbf<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>',
    "text": "just some words, nothing more — ünïcödé too\n".encode(),
    "jxl": b"\xff\x0a\xfa\x7f",
    "psd": b"8BPS\x00\x01" + bytes(20),
}


@pytest.mark.parametrize("name", sorted(NON_IMAGES))
def test_common_non_image_types_are_named(name: str) -> None:
    assert sniff(NON_IMAGES[name]) == name
    assert name not in IMAGE_FORMATS


def test_an_image_inside_a_zip_is_a_zip(photo_bytes: PhotoBytes) -> None:
    assert sniff(_zip_with_a_jpeg(photo_bytes)) == "zip"


def test_html_with_leading_whitespace_is_html() -> None:
    assert sniff(b"\n\n   <html><head></head></html>") == "html"


def test_bmp_needs_a_plausible_header_not_just_bm() -> None:
    assert sniff(b"BM is how this sentence starts.") == "text"
    assert sniff(b"BM" + bytes(12) + struct.pack("<I", 40) + bytes(40)) == "bmp"


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff", b"\x00\x01\x02\x03\xfe\xfd"])
def test_unrecognised_bytes_give_none(data: bytes) -> None:
    assert sniff(data) is None


def test_descriptions_are_phrases_for_error_messages() -> None:
    for name, info in FORMATS.items():
        assert info.name == name
        assert describe(name) == info.description
        assert info.description.split(" ", 1)[0] in ("a", "an")
    assert describe("mp4") == "an MP4 video"
    assert describe("pdf") == "a PDF document"


_SIGNATURES = st.sampled_from(
    [
        b"",
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n",
        b"GIF89a",
        b"RIFF",
        b"BM",
        b"II*\x00",
        b"MZ",
        b"\x00\x00\x00\x18ftyp",
        b"\x00\x00\x00\x01ftyp",
        b"\x1a\x45\xdf\xa3",
        b"<",
        b"\xef\xbb\xbf",
    ]
)


@given(prefix=_SIGNATURES, tail=st.binary(max_size=600))
def test_sniff_never_raises_and_returns_a_known_name(prefix: bytes, tail: bytes) -> None:
    result = sniff(prefix + tail)
    assert result is None or result in FORMATS


@given(data=st.binary(max_size=64))
def test_ends_early_never_raises(data: bytes) -> None:
    for fmt in IMAGE_FORMATS:
        assert isinstance(ends_early(fmt, data), bool)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "gif", "webp", "bmp", "heif"])
def test_ends_early_tells_a_cut_file_from_a_whole_one(photo_bytes: PhotoBytes, fmt: str) -> None:
    data = photo_bytes(fmt, width=64, height=48)
    assert not ends_early(fmt, data)
    assert ends_early(fmt, data[: len(data) * 2 // 3])
