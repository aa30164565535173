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


def test_missing_directory_is_an_error_that_names_the_target(tmp_path):
    target = tmp_path / "nowhere" / "x.bin"
    with pytest.raises(FileNotFoundError) as error:
        write_bytes_atomically(target, b"1")
    assert error.value.filename == str(target) and ".tmp" not in str(error.value)


def test_a_folder_in_the_way_is_an_error_that_names_it_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as error:
        write_bytes_atomically(target, b"1")
    assert error.value.filename == str(target) and ".tmp" not in str(error.value)
    assert os.listdir(tmp_path) == ["out"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_a_read_only_folder_is_an_error_that_names_the_target(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    with pytest.raises(PermissionError) as error:
        write_bytes_atomically(folder / "x.bin", b"1")
    assert error.value.filename == str(folder / "x.bin")


def test_a_name_near_the_length_limit(tmp_path):
    # The temporary name must not push a valid 250-character name past the 255-byte limit.
    path = tmp_path / ("n" * 246 + ".png")
    write_bytes_atomically(path, b"data")
    assert path.read_bytes() == b"data" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_replacing_keeps_the_permissions(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    path.chmod(0o600)
    write_bytes_atomically(path, b"new")
    assert path.read_bytes() == b"new" and path.stat().st_mode & 0o777 == 0o600
