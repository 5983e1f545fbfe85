"""List formats: what each reader accepts, what it reports, and that every format round-trips."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lightkeeper.errors import ListFormatError
from lightkeeper.exchange import (
    FORMATS,
    Invalid,
    Item,
    Notice,
    Record,
    Skipped,
    csvlist,
    detect_format,
    hma,
    lines,
    ncmec,
)

PDQ = "15c72a31bdc65b1944e6d1f04a49bdc60a0905e6153a5a3d7434bfe1fdda84be"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"


def read_all(fmt: str, data: bytes, **kwargs: str) -> list[Item]:
    return list(FORMATS[fmt].read(io.BytesIO(data), **kwargs))


def records(items: list[Item]) -> list[Record]:
    return [item for item in items if isinstance(item, Record)]


def invalid(items: list[Item]) -> list[int]:
    return [item.line_no for item in items if isinstance(item, Invalid)]


# ---------------------------------------------------------------- lines


def test_lines_reads_hashes_notes_comments_and_named_types() -> None:
    data = (
        f"# list of test hashes\n\n{MD5}\n{SHA1},holiday.jpg\n  # indented comment\npdq {PDQ}\n"
    ).encode()
    items = read_all("lines", data)
    assert items == [
        Record(3, "add", "md5", MD5),
        Record(4, "add", "sha1", SHA1, note="holiday.jpg"),
        Record(6, "add", "pdq", PDQ),
    ]


def test_lines_never_guesses_64_hex_digits() -> None:
    with pytest.raises(ListFormatError, match="PDQ or SHA-256"):
        read_all("lines", f"{PDQ}\n".encode())
    assert records(read_all("lines", f"{PDQ}\n".encode(), signal_type="sha256"))[0].signal_type == (
        "sha256"
    )
    declared = read_all("lines", f"# signal_type: pdq\n{PDQ}\n".encode())
    assert declared == [Record(2, "add", "pdq", PDQ)]


def test_lines_reports_bad_lines_by_number_and_reads_on() -> None:
    data = b"%s\n\xff\xfe not utf-8\n%s\nnot a hash at all\n%s\n" % (
        MD5.encode(),
        ("a" * 70_000).encode(),
        SHA1.encode(),
    )
    items = read_all("lines", data)
    assert invalid(items) == [2, 3, 4]
    assert [r.line_no for r in records(items)] == [1, 5]


def test_lines_accepts_bom_crlf_and_a_missing_last_newline() -> None:
    data = b"\xef\xbb\xbf" + f"{MD5}\r\n{SHA1}".encode()
    assert [(r.line_no, r.value) for r in records(read_all("lines", data))] == [
        (1, MD5),
        (2, SHA1),
    ]


def test_lines_keeps_commas_in_urls() -> None:
    items = read_all("lines", b"https://example.com/a,b?c=d\n", signal_type="url")
    assert items == [Record(1, "add", "url", "https://example.com/a,b?c=d")]


def test_lines_writer_refuses_mixed_signal_types() -> None:
    with pytest.raises(ValueError, match="one signal type"):
        lines.write([Record(0, "add", "md5", MD5), Record(0, "add", "sha1", SHA1)], io.BytesIO())


# ---------------------------------------------------------------- csv


def test_csv_reads_value_columns_and_per_type_columns() -> None:
    data = (
        "Signal Type,Value,External ID,Classification,filename\n"
        f"PDQ,{PDQ},img-1,A1,cat.jpg\n"
        f"md5,{MD5},,,\n"
    ).encode()
    items = read_all("csv", data)
    assert items[0] == Notice(1, "ignored CSV columns: filename")
    assert records(items) == [
        Record(2, "add", "pdq", PDQ, external_id="img-1", classification="A1"),
        Record(3, "add", "md5", MD5),
    ]
    wide = read_all("csv", f"id,md5,pdq\nx1,{MD5},{PDQ}\nx2,,{PDQ}\n".encode())
    assert [(r.line_no, r.signal_type, r.external_id) for r in records(wide)] == [
        (2, "md5", "x1"),
        (2, "pdq", "x1"),
        (3, "pdq", "x2"),
    ]


def test_csv_tolerates_bom_crlf_and_quoted_line_breaks() -> None:
    data = (
        f'\ufeffsignal_type,value,note\r\nmd5,{MD5},"two\r\nlines"\r\nsha1,{SHA1},\r\n'
    ).encode()
    got = records(read_all("csv", data))
    assert [(r.line_no, r.note) for r in got] == [(2, "two\nlines"), (4, None)]


def test_csv_reports_malformed_rows_and_reads_on() -> None:
    data = b"".join(
        [
            b"signal_type,value,op\n",
            f"md5,{MD5},add,extra\n".encode(),  # an unquoted comma too many
            f"md5,{MD5},replace\n".encode(),  # no such op
            b"md5,,\n",  # no hash
            b"\xff\n",  # not UTF-8
            f"sha1,{SHA1}\n".encode(),  # a short row is padded
        ]
    )
    items = read_all("csv", data)
    assert invalid(items) == [2, 3, 4, 5]
    assert records(items) == [Record(6, "add", "sha1", SHA1)]


def test_csv_removals_by_value_or_by_external_id() -> None:
    data = f"signal_type,value,external_id,op\nmd5,{MD5},,remove\n,,x7,delete\n".encode()
    assert records(read_all("csv", data)) == [
        Record(2, "remove", "md5", MD5),
        Record(3, "remove", None, None, external_id="x7"),
    ]


def test_csv_needs_a_header_naming_a_hash_column() -> None:
    with pytest.raises(ListFormatError, match="no hash column"):
        read_all("csv", b"name,size\ncat.jpg,10\n")
    with pytest.raises(ListFormatError, match="signal_type"):
        read_all("csv", f"value\n{MD5}\n".encode())
    assert records(read_all("csv", f"value\n{MD5}\n".encode(), signal_type="md5"))


# ---------------------------------------------------------------- hma (ThreatExchange CSV)


def test_hma_reads_threatexchange_exports_and_skips_non_positive_opinions() -> None:
    data = (
        "collab,signal_type,signal_str,category,tags\n"
        f"Sample Data,pdq,{PDQ},POSITIVE_CLASS,csam a1\n"
        f"Sample Data,video_md5,{MD5},TRUE_POSITIVE,\n"
        f"Sample Data,pdq,{'0' * 64},NEGATIVE_CLASS,\n"
        f"Sample Data,pdq,{'1' * 64},INVESTIGATION_SEED,\n"
    ).encode()
    items = read_all("hma", data)
    assert records(items) == [
        Record(2, "add", "pdq", PDQ, classification="csam a1", list_name="Sample Data"),
        Record(3, "add", "md5", MD5, list_name="Sample Data"),
    ]
    assert [i for i in items if isinstance(i, Skipped)] == [
        Skipped(4, "opinion NEGATIVE_CLASS (not a confirmed positive)"),
        Skipped(5, "opinion INVESTIGATION_SEED (not a confirmed positive)"),
    ]


def test_hma_needs_its_columns() -> None:
    with pytest.raises(ListFormatError, match="signal_str"):
        read_all("hma", b"collab,signal_type\nx,pdq\n")


# ---------------------------------------------------------------- ncmec XML

NCMEC_SAMPLE = f"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2">
  <images count="2" maxTimestamp="2024-01-02T03:04:05Z">
    <image>
      <member id="7">Some Member</member>
      <timestamp>2024-01-02T03:04:05Z</timestamp>
      <id>entry-1</id>
      <classification>A1</classification>
      <fingerprints>
        <md5>{MD5.upper()}</md5>
        <pdq>{PDQ}</pdq>
        <pdna>1,2,3,4</pdna>
      </fingerprints>
      <feedback><affirmativeFeedback type="Md5"><members><member id="7">x</member>
      </members></affirmativeFeedback></feedback>
    </image>
    <deletedImage>
      <member id="8">Other</member>
      <id>entry-0</id>
      <timestamp>2024-01-02T03:04:06Z</timestamp>
    </deletedImage>
  </images>
  <videos count="1" maxTimestamp="2024-01-02T03:04:05Z">
    <video>
      <id>video-1</id>
      <fingerprints>
        <sha1>{SHA1}</sha1>
        <tmk-pdqf rel="self" href="/v2/entries/1/fingerprints/TMK_PDQF"/>
      </fingerprints>
    </video>
  </videos>
  <paging><next>/v2/entries?from=2024&amp;start=2</next></paging>
</queryResult>
""".encode()


def test_ncmec_reads_entries_fingerprints_and_deletions() -> None:
    items = read_all("ncmec", NCMEC_SAMPLE)
    assert items == [
        Record(4, "add", "md5", MD5.upper(), external_id="entry-1", classification="A1"),
        Record(4, "add", "pdq", PDQ, external_id="entry-1", classification="A1"),
        Record(4, "add", "photodna", "1,2,3,4", external_id="entry-1", classification="A1"),
        Record(17, "remove", None, None, external_id="entry-0"),
        Record(24, "add", "sha1", SHA1, external_id="video-1"),
        Skipped(24, "tmk-pdqf fingerprint given only by reference"),
    ]


def test_ncmec_without_namespace_reads_the_same() -> None:
    plain = NCMEC_SAMPLE.replace(b' xmlns="https://hashsharing.ncmec.org/hashsharing/v2"', b"")
    assert read_all("ncmec", plain) == read_all("ncmec", NCMEC_SAMPLE)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE queryResult [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<queryResult><images><image><id>&lol4;</id><fingerprints><md5>x</md5></fingerprints>
</image></images></queryResult>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE queryResult [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<queryResult><images><image><id>&secret;</id></image></images></queryResult>
"""
UNDECLARED_ENTITY = b"<queryResult><images><image><id>&secret;</id></image></images></queryResult>"


@pytest.mark.parametrize("attack", [BILLION_LAUGHS, EXTERNAL_ENTITY])
def test_ncmec_refuses_dtds_and_entities(attack: bytes) -> None:
    with pytest.raises(ListFormatError, match="refused"):
        read_all("ncmec", attack)


def test_ncmec_reports_broken_xml_with_its_line() -> None:
    with pytest.raises(ListFormatError, match="line 1: broken XML"):
        read_all("ncmec", UNDECLARED_ENTITY)
    truncated = NCMEC_SAMPLE[: NCMEC_SAMPLE.index(b"<videos")] + b"<videos><vid"
    with pytest.raises(ListFormatError, match="broken XML"):
        read_all("ncmec", truncated)
    with pytest.raises(ListFormatError, match="not NCMEC"):
        read_all("ncmec", b"<html><body/></html>")


def test_ncmec_flags_bad_entries_and_reads_on() -> None:
    data = (
        "<queryResult><images>\n"
        "<deletedImage><member id='1'>m</member></deletedImage>\n"
        "<image><id>no-fingerprints</id></image>\n"
        f"<image><id>{'x' * 70_000}</id><fingerprints><md5>{MD5}</md5></fingerprints></image>\n"
        f"<image><id>ok</id><fingerprints><md5>{MD5}</md5></fingerprints></image>\n"
        "</images></queryResult>"
    ).encode()
    items = read_all("ncmec", data)
    assert invalid(items) == [2, 3, 4]
    assert records(items) == [Record(5, "add", "md5", MD5, external_id="ok")]


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (MD5.encode() + b"\n", "lines"),
        (b"\xef\xbb\xbf# comment\n\n" + PDQ.encode() + b",x\n", "lines"),
        (b"pdq " + PDQ.encode(), "lines"),
        (b"https://example.com/x\n", "lines"),
        (b"", "lines"),
        (b"signal_type,value\nmd5,x\n", "csv"),
        (b"ID,MD5,PDQ\r\n", "csv"),
        (b"collab,signal_type,signal_str,category,tags\n", "hma"),
        (NCMEC_SAMPLE[:200], "ncmec"),
        (b"  <queryResult>", "ncmec"),
    ],
)
def test_detect_format(head: bytes, expected: str) -> None:
    assert detect_format(head) == expected


@pytest.mark.parametrize("head", [b"name,size\ncat.jpg,1\n", b"<html></html>", b"hello world\n"])
def test_detect_format_says_when_unsure(head: bytes) -> None:
    with pytest.raises(ListFormatError, match=r"lines, csv, hma or ncmec|not NCMEC"):
        detect_format(head)


# ---------------------------------------------------------------- round trips

_text = (
    st.text(
        st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=12
    )
    .map(str.strip)
    .filter(bool)
)
_maybe = st.none() | _text
_hex = {
    "pdq": st.integers(0, 2**256 - 1).map("{:064x}".format),
    "md5": st.integers(0, 2**128 - 1).map("{:032x}".format),
    "sha1": st.integers(0, 2**160 - 1).map("{:040x}".format),
}


def _records(
    op: str, signal_types: list[str], **fields: st.SearchStrategy[str | None]
) -> st.SearchStrategy[Record]:
    """Records of one of `signal_types` (or none, for removals by id) with these fields."""
    if not signal_types:
        return st.fixed_dictionaries(fields).map(lambda f: Record(0, op, None, None, **f))
    return st.sampled_from(signal_types).flatmap(
        lambda t: st.fixed_dictionaries({"value": _hex.get(t, _text), **fields}).map(
            lambda f: Record(0, op, t, **f)
        )
    )


def _roundtrip(fmt: str, written: list[Record], **kwargs: bool) -> list[Item]:
    buffer = io.BytesIO()
    writer = csvlist.write if kwargs else FORMATS[fmt].write
    assert writer(written, buffer, **kwargs) == len(written)
    return read_all(fmt, buffer.getvalue())


def _without_line_numbers(items: list[Item]) -> list[Item]:
    return [item._replace(line_no=0) if isinstance(item, Record) else item for item in items]


_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_settings
@given(signal_type=st.sampled_from(sorted(_hex)), data=st.data())
def test_lines_round_trip(signal_type: str, data: st.DataObject) -> None:
    written = data.draw(st.lists(_records("add", [signal_type], note=_maybe), max_size=20))
    assert _without_line_numbers(_roundtrip("lines", written)) == written


_ALL_FIELDS = {
    "external_id": _maybe,
    "classification": _maybe,
    "list_name": _maybe,
    "list_version": _maybe,
    "note": _maybe | st.just("multi\nline note"),
}


@_settings
@given(
    written=st.lists(
        _records("add", sorted(_hex), **_ALL_FIELDS)
        | _records("remove", sorted(_hex))
        | _records("remove", [], external_id=_text),
        max_size=20,
    )
)
def test_csv_round_trip(written: list[Record]) -> None:
    assert _without_line_numbers(_roundtrip("csv", written, with_op=True)) == written
    adds = [r for r in written if r.op == "add"]
    assert _without_line_numbers(_roundtrip("csv", adds)) == adds


@_settings
@given(
    written=st.lists(
        _records("add", sorted(_hex), classification=_maybe, list_name=_maybe), max_size=20
    )
)
def test_hma_round_trip(written: list[Record]) -> None:
    assert _without_line_numbers(_roundtrip("hma", written)) == written


@_settings
@given(
    written=st.lists(
        _records("add", [*sorted(_hex), "photodna"], external_id=_maybe, classification=_maybe)
        | _records("remove", [], external_id=_text),
        max_size=20,
    )
)
def test_ncmec_round_trip(written: list[Record]) -> None:
    assert _without_line_numbers(_roundtrip("ncmec", written)) == written


@settings(max_examples=150, deadline=None)
@given(fmt=st.sampled_from(sorted(FORMATS)), data=st.binary(max_size=300))
def test_readers_never_fail_on_garbage_except_with_list_format_error(fmt: str, data: bytes) -> None:
    try:
        items = read_all(fmt, data, signal_type="md5")
    except ListFormatError:
        return
    assert all(isinstance(i, Record | Invalid | Skipped | Notice) for i in items)


def test_every_format_is_registered_under_its_own_name() -> None:
    assert sorted(FORMATS) == ["csv", "hma", "lines", "ncmec"]
    for module in (lines, csvlist, hma, ncmec):
        assert FORMATS[module.NAME].read is module.read
