"""mmsr.atomic: the user's files are replaced whole or not at all."""
from __future__ import annotations

import os

import pytest

from mmsr.atomic import write_atomically, write_bytes_atomically


def test_writes_and_replaces(tmp_path):
    target = tmp_path / "x.json"
    write_bytes_atomically(target, b"{}")
    write_bytes_atomically(target, b'{"a": 1}')
    assert target.read_bytes() == b'{"a": 1}'
    assert os.listdir(tmp_path) == ["x.json"]  # no temporary file left behind


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "keep.bin"
    target.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["keep.bin"]


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_bytes_atomically(tmp_path / "nowhere" / "x.bin", b"1")
