"""Importing list files into banks and exporting them back, as an operator relies on it."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from typing import Any

import pytest

from lightkeeper.banks import BankStore, WriteReport
from lightkeeper.banks.testing import backends, temporary_store
from lightkeeper.errors import ListFormatError, NotFound, StoreBusy, UnknownSignalType
from lightkeeper.exchange import (
    FORMATS,
    MAX_INVALID_LINES,
    export_bank,
    import_list,
)

PDQ = "15c72a31bdc65b1944e6d1f04a49bdc60a0905e6153a5a3d7434bfe1fdda84be"
MD5 = "d41d8cd98f00b204e9800998ecf8427e"


@pytest.fixture(params=backends())
def store(request: pytest.FixtureRequest) -> Iterator[BankStore]:
    with temporary_store(request.param) as s:
        s.create_bank("b")
        yield s


def pdq_lines(count: int, start: int = 0) -> bytes:
    return b"".join(f"{i:064x}\n".encode() for i in range(start, start + count))


def entries(store: BankStore, bank: str = "b") -> set[tuple[str, str]]:
    return {(e.signal_type, e.value) for e in store.iter_entries(bank)}


def test_importing_the_same_file_twice_adds_nothing(store: BankStore) -> None:
    data = pdq_lines(120)
    first = import_list(store, "b", io.BytesIO(data), signal_type="pdq", batch_size=50)
    assert (first.format, first.added, first.unchanged, first.invalid) == ("lines", 120, 0, 0)
    second = import_list(store, "b", io.BytesIO(data), signal_type="pdq", batch_size=50)
    assert (second.added, second.updated, second.unchanged) == (0, 0, 120)
    assert store.count_entries("b") == 120
    assert [r.status for r in store.list_imports("b")] == ["complete", "complete"]


def test_malformed_lines_are_reported_by_number_and_the_rest_imported(store: BankStore) -> None:
    data = b"\n".join(
        [
            b"# signal_type: pdq",
            PDQ.encode(),
            b"not-a-hash",
            PDQ[:-1].encode() + b"g",
            b"\xff\xff",
            ("1" * 64).encode(),
        ]
    )
    report = import_list(store, "b", io.BytesIO(data))
    assert (report.added, report.invalid) == (2, 3)
    assert [line for line, _ in report.invalid_lines] == [3, 4, 5]
    assert "hex" in report.invalid_lines[1][1]
    assert entries(store) == {("pdq", PDQ), ("pdq", "1" * 64)}
    assert store.list_imports("b")[0].invalid == 3


def test_invalid_lines_are_listed_up_to_a_cap_and_counted_beyond(store: BankStore) -> None:
    data = b"signal_type,value\n" + b"md5,zz\n" * (MAX_INVALID_LINES + 5)
    report = import_list(store, "b", io.BytesIO(data))
    assert report.invalid == MAX_INVALID_LINES + 5
    assert len(report.invalid_lines) == MAX_INVALID_LINES
    assert report.invalid_lines_omitted == 5


def test_empty_files_import_nothing(store: BankStore) -> None:
    for fmt in (None, "lines", "csv", "hma"):
        report = import_list(store, "b", io.BytesIO(b""), fmt=fmt)
        assert (report.added, report.invalid) == (0, 0)
    with pytest.raises(ListFormatError, match="broken XML"):
        import_list(store, "b", io.BytesIO(b""), fmt="ncmec")


def test_list_name_and_version_are_recorded_on_entries(store: BankStore) -> None:
    csv_data = f"signal_type,value,list_name,classification\npdq,{PDQ},from-file,A1\n".encode()
    import_list(store, "b", io.BytesIO(csv_data))
    assert next(store.iter_entries("b")).list_name == "from-file"
    import_list(store, "b", io.BytesIO(csv_data), list_name="ncmec", list_version="2024-06")
    entry = next(store.iter_entries("b"))
    assert (entry.list_name, entry.list_version, entry.classification) == (
        "ncmec",
        "2024-06",
        "A1",
    )


def test_ncmec_deletions_remove_what_the_list_added(store: BankStore) -> None:
    added = f"""<queryResult><images>
      <image><id>e1</id><fingerprints><md5>{MD5}</md5><pdq>{PDQ}</pdq></fingerprints></image>
      <image><id>e2</id><fingerprints><md5>{"0" * 32}</md5></fingerprints></image>
    </images></queryResult>""".encode()
    report = import_list(store, "b", io.BytesIO(added), list_name="ncmec")
    assert report.added == 3
    store.add_entry("b", "md5", "1" * 32, list_name="other", external_id="e1")
    deleted = (
        b"<queryResult><images><deletedImage><id>e1</id></deletedImage></images></queryResult>"
    )
    report = import_list(store, "b", io.BytesIO(deleted), list_name="ncmec")
    assert report.removed == 2
    assert entries(store) == {("md5", "0" * 32), ("md5", "1" * 32)}  # other lists untouched


def test_hashes_of_unregistered_signal_types_are_skipped_and_counted(store: BankStore) -> None:
    data = f"""<queryResult><images>
      <image><id>e1</id><fingerprints><md5>{MD5}</md5><pdna>1,2,3</pdna></fingerprints></image>
      <image><id>e2</id><fingerprints><pdna>4,5,6</pdna></fingerprints></image>
    </images></queryResult>""".encode()
    report = import_list(store, "b", io.BytesIO(data))
    assert (report.added, report.invalid) == (1, 0)
    assert report.skipped == {"signal type 'photodna' is not registered": 2}
    assert store.list_imports("b")[0].skipped == 2


def test_gzipped_lists_are_read_transparently(store: BankStore) -> None:
    report = import_list(store, "b", io.BytesIO(gzip.compress(pdq_lines(10))), signal_type="pdq")
    assert report.added == 10


def test_bad_arguments_fail_before_anything_is_written(store: BankStore) -> None:
    with pytest.raises(NotFound):
        import_list(store, "nope", io.BytesIO(pdq_lines(1)), signal_type="pdq")
    with pytest.raises(UnknownSignalType):
        import_list(store, "b", io.BytesIO(pdq_lines(1)), signal_type="nope")
    with pytest.raises(ListFormatError, match="unknown list format"):
        import_list(store, "b", io.BytesIO(pdq_lines(1)), fmt="xlsx")
    with pytest.raises(ListFormatError, match="PDQ or SHA-256"):
        import_list(store, "b", io.BytesIO(pdq_lines(1)))
    assert store.count_entries("b") == 0


def test_a_file_broken_midway_keeps_whole_batches_and_records_the_failure(
    store: BankStore,
) -> None:
    good = "".join(
        f"<image><id>e{i}</id><fingerprints><md5>{i:032x}</md5></fingerprints></image>\n"
        for i in range(25)
    )
    data = f"<queryResult><images>\n{good}<image><id>broken".encode()
    with pytest.raises(ListFormatError, match="20 records in earlier batches"):
        import_list(store, "b", io.BytesIO(data), batch_size=10)
    assert store.count_entries("b") == 20  # two whole batches; the third never applied
    [run] = store.list_imports("b")
    assert (run.status, run.added) == ("failed", 20)
    assert run.error is not None and "broken XML" in run.error


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_export_then_import_reproduces_the_bank(store: BankStore, fmt: str) -> None:
    store.add_entry("b", "pdq", PDQ, list_name="l", external_id="x", classification="A1")
    store.add_entry("b", "pdq", "0" * 64, note="kept in lines and csv")
    store.create_bank("copy")
    out = io.BytesIO()
    assert export_bank(store, "b", out, fmt) == 2
    report = import_list(store, "copy", io.BytesIO(out.getvalue()))  # detected
    assert (report.format, report.added, report.invalid) == (fmt, 2, 0)
    assert entries(store, "copy") == entries(store, "b")
    original = {e.value: e for e in store.iter_entries("b")}
    for copy in store.iter_entries("copy"):
        carried = {
            "lines": ["note"],
            "csv": ["list_name", "external_id", "classification", "note"],
            "hma": ["list_name", "classification"],
            "ncmec": ["external_id", "classification"],
        }[fmt]
        for field in carried:
            assert getattr(copy, field) == getattr(original[copy.value], field)


def test_export_of_one_signal_type_for_single_type_formats(store: BankStore) -> None:
    store.add_entry("b", "pdq", PDQ)
    store.add_entry("b", "md5", MD5)
    with pytest.raises(ValueError, match="one signal type"):
        export_bank(store, "b", io.BytesIO(), "lines")
    out = io.BytesIO()
    assert export_bank(store, "b", out, "lines", signal_type="md5") == 1
    assert out.getvalue() == f"# signal_type: md5\n{MD5}\n".encode()


def test_a_failed_batch_write_stops_the_import_and_is_recorded(
    store: BankStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = store.write_batch
    calls = 0

    def flaky_write(*args: Any, **kwargs: Any) -> WriteReport:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise StoreBusy("the bank store stayed locked")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(store, "write_batch", flaky_write)
    with pytest.raises(StoreBusy):
        import_list(store, "b", io.BytesIO(pdq_lines(50)), signal_type="pdq", batch_size=10)
    assert store.count_entries("b") == 10
    [run] = store.list_imports("b")
    assert (run.status, run.added, run.error) == ("failed", 10, "the bank store stayed locked")
