"""ExactIndex: lookup by exact value, updates, files and input checks, against a plain model."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from lightkeeper.errors import IndexFileError
from lightkeeper.index import ExactIndex

VALUES = st.binary(min_size=0, max_size=6)  # short values collide often: shared values get tested


def md5(text: str) -> bytes:
    return hashlib.md5(text.encode()).digest()


class ExactAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.idx = ExactIndex()
        self.model: dict[int, bytes] = {}
        self.tmp = tempfile.TemporaryDirectory()

    def teardown(self) -> None:
        self.tmp.cleanup()

    @rule(pairs=st.lists(st.tuples(st.integers(-5, 30), VALUES), max_size=10))
    def add(self, pairs: list[tuple[int, bytes]]) -> None:
        self.idx.add([i for i, _ in pairs], [v for _, v in pairs])
        for i, v in pairs:
            self.model[i] = v

    @rule(ids=st.lists(st.integers(-5, 35), max_size=6))
    def remove(self, ids: list[int]) -> None:
        assert self.idx.remove(ids) == len(set(ids) & set(self.model))
        for i in ids:
            self.model.pop(i, None)

    @rule()
    def save_and_load(self) -> None:
        path = Path(self.tmp.name) / "exact.lke"
        self.idx.save(path)
        self.idx = ExactIndex.load(path)

    @rule(values=st.lists(VALUES, max_size=5))
    def lookup(self, values: list[bytes]) -> None:
        known = list(self.model.values())[:3]
        for value in [*values, *known]:
            expected = sorted(i for i, v in self.model.items() if v == value)
            assert self.idx.lookup([value]) == [expected]

    @invariant()
    def size(self) -> None:
        assert len(self.idx) == len(self.model)


ExactAgainstModel.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None
)
test_exact_index_against_a_model = ExactAgainstModel.TestCase


def test_lookup_add_replace_remove() -> None:
    idx = ExactIndex()
    a, b = md5("a"), md5("b")
    idx.add(np.array([1, 2, 3], dtype=np.int64), [a, a, b])
    assert idx.lookup([a, b, md5("c")]) == [[1, 2], [3], []]
    idx.add([2], [b])  # re-adding an id replaces its value
    assert idx.lookup([a, b]) == [[1], [2, 3]]
    assert len(idx) == 3
    assert idx.remove([2, 99]) == 1  # unknown ids are ignored
    assert idx.lookup([a, b]) == [[1], [3]]
    assert idx.remove([2]) == 0


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    idx = ExactIndex()
    values = [md5(str(i)) for i in range(1000)] + [b"", b"\x00" * 20, bytes(range(256))]
    idx.add(range(len(values)), values)
    idx.add([5000], [values[0]])
    path = tmp_path / "md5.lke"
    idx.save(path)
    back = ExactIndex.load(path)
    assert len(back) == len(idx)
    assert back.lookup(values) == idx.lookup(values)
    assert back.lookup([values[0]]) == [[0, 5000]]


def test_empty_index_round_trips(tmp_path: Path) -> None:
    ExactIndex().save(tmp_path / "empty.lke")
    back = ExactIndex.load(tmp_path / "empty.lke")
    assert len(back) == 0
    assert back.lookup([b"x"]) == [[]]


def test_damaged_files_raise_index_file_error(tmp_path: Path) -> None:
    idx = ExactIndex()
    idx.add(range(100), [md5(str(i)) for i in range(100)])
    good = tmp_path / "good.lke"
    idx.save(good)
    data = good.read_bytes()
    bad = tmp_path / "bad.lke"
    flipped = bytearray(data)
    flipped[-3] ^= 1
    for content in (b"", data[:30], data[:-1], bytes(flipped), b"\x89LKHAMM\n" + data[8:]):
        bad.write_bytes(content)
        with pytest.raises(IndexFileError):
            ExactIndex.load(bad)


def test_inputs_are_checked() -> None:
    idx = ExactIndex()
    with pytest.raises(ValueError, match="single value"):
        idx.add([1], b"abc")
    with pytest.raises(ValueError, match="bytes"):
        idx.add([1], ["abc"])
    with pytest.raises(ValueError, match="1 ids but 2 values"):
        idx.add([1], [b"a", b"b"])
    with pytest.raises(ValueError, match="integers"):
        idx.add([1.5], [b"a"])
    with pytest.raises(ValueError, match="bytes"):
        idx.lookup([1])
    assert len(idx) == 0
    idx.add([1], [bytearray(b"ab")])  # bytes-like values are accepted and copied
    assert idx.lookup([b"ab"]) == [[1]]


def test_the_index_package_exports_exactly_its_two_indexes() -> None:
    import lightkeeper.index

    assert lightkeeper.index.__all__ == ["ExactIndex", "HammingIndex"]
