"""Say what a byte string is from its own first bytes, never from a file name.

Uploads arrive with names and content types chosen by the uploader, so neither is evidence.
The magic bytes decide which single decoder may look at the data (see `decode`), and they
let an error name what was sent instead ("a PDF document", "an MP4 video") rather than
failing with a decoder's message about a file it was never meant to read.

`sniff` never raises and reads at most the first few kilobytes, so it is safe on any input.
`ends_early` answers a second question from the same container structure, used only after
a decoder has failed: does the file stop before its own headers say it should?
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "FORMATS",
    "IMAGE_FORMATS",
    "FormatInfo",
    "Kind",
    "describe",
    "ends_early",
    "ftyp_brands",
    "sniff",
]

Kind = Literal["image", "video", "audio", "document", "archive", "executable", "text"]


@dataclass(frozen=True)
class FormatInfo:
    """A format `sniff` can name: its kind and how an error message describes it."""

    name: str
    kind: Kind
    description: str


def _info(name: str, kind: Kind, description: str) -> tuple[str, FormatInfo]:
    return name, FormatInfo(name, kind, description)


FORMATS: Mapping[str, FormatInfo] = MappingProxyType(
    dict(
        [
            # Images Lightkeeper decodes.
            _info("jpeg", "image", "a JPEG image"),
            _info("png", "image", "a PNG image"),
            _info("gif", "image", "a GIF image"),
            _info("webp", "image", "a WebP image"),
            _info("bmp", "image", "a BMP image"),
            _info("tiff", "image", "a TIFF image"),
            _info("heif", "image", "a HEIF/HEIC image"),
            _info("avif", "image", "an AVIF image"),
            # Images it recognises but does not decode: each decoder is attack surface, and
            # these are rare in uploads.
            _info("jxl", "image", "a JPEG XL image"),
            _info("jp2", "image", "a JPEG 2000 image"),
            _info("psd", "image", "a Photoshop document"),
            _info("ico", "image", "a Windows icon"),
            _info("exr", "image", "an OpenEXR image"),
            _info("qoi", "image", "a QOI image"),
            _info("svg", "image", "an SVG drawing"),
            # Video and audio.
            _info("mp4", "video", "an MP4 video"),
            _info("mov", "video", "a QuickTime video"),
            _info("3gp", "video", "a 3GP video"),
            _info("webm", "video", "a WebM video"),
            _info("mkv", "video", "a Matroska video"),
            _info("avi", "video", "an AVI video"),
            _info("flv", "video", "a Flash video"),
            _info("mpeg", "video", "an MPEG video"),
            _info("mpegts", "video", "an MPEG transport stream"),
            _info("m4a", "audio", "an MPEG-4 audio file"),
            _info("wav", "audio", "a WAV audio file"),
            _info("ogg", "audio", "an Ogg media file"),
            _info("flac", "audio", "a FLAC audio file"),
            _info("mp3", "audio", "an MP3 audio file"),
            # Documents, archives, programs, text.
            _info("pdf", "document", "a PDF document"),
            _info("postscript", "document", "a PostScript document"),
            _info("sqlite", "document", "an SQLite database"),
            _info("zip", "archive", "a ZIP archive"),
            _info("gzip", "archive", "a gzip archive"),
            _info("bzip2", "archive", "a bzip2 archive"),
            _info("xz", "archive", "an xz archive"),
            _info("zstd", "archive", "a Zstandard archive"),
            _info("7z", "archive", "a 7-Zip archive"),
            _info("rar", "archive", "a RAR archive"),
            _info("elf", "executable", "an ELF executable"),
            _info("exe", "executable", "a Windows executable"),
            _info("macho", "executable", "a Mach-O executable"),
            _info("html", "text", "an HTML document"),
            _info("xml", "text", "an XML document"),
            _info("text", "text", "a text file"),
        ]
    )
)
"""Every name `sniff` can return, with its kind and description."""

IMAGE_FORMATS: frozenset[str] = frozenset(
    {"jpeg", "png", "gif", "webp", "bmp", "tiff", "heif", "avif"}
)
"""The formats `decode_image` decodes (AVIF only where Pillow was built with it)."""


def describe(fmt: str) -> str:
    """A human description of a name `sniff` returned, for error messages."""
    info = FORMATS.get(fmt)
    return info.description if info is not None else f"a {fmt} file"


# ISO base media file format (HEIF, AVIF, MP4, QuickTime …): brands of the `ftyp` box.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"}
)
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})

# DIB header sizes of the BMP variants Pillow reads: "BM" alone is too common a prefix.
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

_SIMPLE_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),  # BigTIFF
    (b"MM\x00+", "tiff"),
    (b"\xff\x0a", "jxl"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "jp2"),
    (b"\xffO\xffQ", "jp2"),  # raw JPEG 2000 codestream
    (b"8BPS", "psd"),
    (b"v/1\x01", "exr"),
    (b"qoif", "qoi"),
    (b"%PDF-", "pdf"),
    (b"%!PS", "postscript"),
    (b"\xc5\xd0\xd3\xc6", "postscript"),  # DOS EPS binary header
    (b"SQLite format 3\x00", "sqlite"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"PK\x07\x08", "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"(\xb5/\xfd", "zstd"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"\x7fELF", "elf"),
    (b"\xfe\xed\xfa\xce", "macho"),
    (b"\xfe\xed\xfa\xcf", "macho"),
    (b"\xce\xfa\xed\xfe", "macho"),
    (b"\xcf\xfa\xed\xfe", "macho"),
    (b"OggS", "ogg"),
    (b"fLaC", "flac"),
    (b"ID3", "mp3"),
    (b"FLV\x01", "flv"),
    (b"\x00\x00\x01\xba", "mpeg"),
    (b"\x00\x00\x01\xb3", "mpeg"),
)

_TEXT_SNIFF_BYTES = 1024


def sniff(data: bytes) -> str | None:
    """The format of `data` from its magic bytes, or None when nothing is recognised.

    Returns one of the names in `FORMATS`. Never raises.
    """
    head = bytes(data[:4096])
    for signature, name in _SIMPLE_SIGNATURES:
        if head.startswith(signature):
            return name
    return (
        _sniff_riff(head)
        or _sniff_bmp(head)
        or _sniff_isobmff(head)
        or _sniff_container_video(head)
        or _sniff_misc_binary(head)
        or _sniff_text(head)
    )


def _sniff_riff(head: bytes) -> str | None:
    if not head.startswith(b"RIFF") or len(head) < 12:
        return None
    return {b"WEBP": "webp", b"WAVE": "wav", b"AVI ": "avi"}.get(head[8:12])


def _sniff_bmp(head: bytes) -> str | None:
    if head.startswith(b"BM") and len(head) >= 18:
        (header_size,) = struct.unpack_from("<I", head, 14)
        if header_size in _BMP_HEADER_SIZES:
            return "bmp"
    return None


def ftyp_brands(head: bytes) -> tuple[bytes, frozenset[bytes]] | None:
    """The major brand and all brands of a leading ISO-BMFF `ftyp` box, or None if absent."""
    if len(head) < 16 or head[4:8] != b"ftyp":
        return None
    (size,) = struct.unpack_from(">I", head, 0)
    start = 8
    if size == 1:  # 64-bit "largesize" follows the type
        if len(head) < 24:
            return None
        (size,) = struct.unpack_from(">Q", head, 8)
        start = 16
    elif size == 0:  # box runs to the end of the file
        size = len(head)
    end = min(size, len(head))
    if end < start + 8:
        return None
    major = head[start : start + 4]
    compatible = {head[i : i + 4] for i in range(start + 8, end - 3, 4)}
    return major, frozenset({major, *compatible})


def _sniff_isobmff(head: bytes) -> str | None:
    brands = ftyp_brands(head)
    if brands is None:
        if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
            return "mov"
        return None
    major, all_brands = brands
    # The major brand says what the file is meant to be; the compatible brands decide the
    # generic HEIF brands (mif1, msf1), which AVIF files also carry.
    if major in _AVIF_BRANDS:
        return "avif"
    if major in _HEIF_BRANDS - {b"mif1", b"msf1"}:
        return "heif"
    if major in (b"mif1", b"msf1"):
        return "avif" if all_brands & _AVIF_BRANDS else "heif"
    if major == b"qt  ":
        return "mov"
    if major in _AUDIO_BRANDS:
        return "m4a"
    if major.startswith(b"3g"):
        return "3gp"
    if all_brands & _AVIF_BRANDS:
        return "avif"
    if all_brands & _HEIF_BRANDS:
        return "heif"
    return "mp4"


def _sniff_container_video(head: bytes) -> str | None:
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML
        return "webm" if b"webm" in head[:64] else "mkv"
    # MPEG transport stream: a sync byte every 188 bytes.
    if len(head) >= 377 and head[0] == head[188] == head[376] == 0x47:
        return "mpegts"
    return None


def _sniff_misc_binary(head: bytes) -> str | None:
    if head.startswith(b"MZ") and len(head) >= 64:
        (pe_offset,) = struct.unpack_from("<I", head, 60)
        if head[pe_offset : pe_offset + 4] == b"PE\x00\x00":
            return "exe"
    # MP3 without an ID3 tag: an MPEG-1 layer 3 frame header.
    if len(head) >= 4 and head[0] == 0xFF and head[1] in (0xFB, 0xFA, 0xF3, 0xF2):
        return "mp3"
    # ICO: reserved 0, type 1, at least one image whose reserved byte is 0.
    if (
        len(head) >= 22
        and head.startswith(b"\x00\x00\x01\x00")
        and head[4:6] != b"\x00\x00"
        and head[9] == 0
    ):
        return "ico"
    return None


def _sniff_text(head: bytes) -> str | None:
    sample = head[:_TEXT_SNIFF_BYTES]
    for bom in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"):
        if sample.startswith(bom):
            sample = sample[len(bom) :]
            break
    if not sample or b"\x00" in sample:
        return None
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut by the sample boundary is still text.
        if error.start < len(sample) - 3:
            return None
        text = sample[: error.start].decode("utf-8")
    if not text:
        return None
    printable = sum(ch.isprintable() or ch in "\t\n\r\f" for ch in text)
    if printable < 0.95 * len(text):
        return None
    lowered = text.lstrip().lower()
    if lowered.startswith("<"):
        if "<svg" in lowered:
            return "svg"
        if lowered.startswith(("<?xml", "<rss", "<feed")):
            return "xml"
        return "html"
    return "text"


def ends_early(fmt: str, data: bytes) -> bool:
    """True when the container structure of `data` says the file was cut short.

    Used after a decoder failed, to tell truncated from corrupt files for formats whose
    decoders report truncation with generic messages (WebP, HEIF, AVIF) or not at all when
    the cut falls inside the header. False when unsure.
    """
    try:
        if fmt == "png":
            return b"IEND" not in data[-64:]
        if fmt == "gif":
            return not data.rstrip(b"\x00").endswith(b";")
        if fmt == "jpeg":
            return b"\xff\xd9" not in data[-1024:]
        if fmt == "webp":
            riff_size: int = struct.unpack_from("<I", data, 4)[0]
            return riff_size + 8 > len(data)
        if fmt == "bmp":
            file_size: int = struct.unpack_from("<I", data, 2)[0]
            return file_size > len(data)
        if fmt in ("heif", "avif"):
            return _boxes_overrun(data)
    except struct.error:
        return True
    return False


def _boxes_overrun(data: bytes) -> bool:
    """True when a top-level ISO-BMFF box claims more bytes than the file holds."""
    offset = 0
    while offset + 8 <= len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        if size == 1:
            if offset + 16 > len(data):
                return True
            (size,) = struct.unpack_from(">Q", data, offset + 8)
        elif size == 0:
            return False
        if size < 8:
            return False
        offset += size
    return offset != len(data)
