"""`mmsr inspect`: a bundle's routing, classes, weights check and training chain, as text and JSON;
damaged and missing files are refused by name."""
from __future__ import annotations

import json

import pytest

from test_bundle import _read_raw, _rewrite

from mmsr.bundle import Bundle, default_bundle_path, load_bundle, save_bundle
from mmsr.bundle_summary import training_rounds
from mmsr.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def _inspect(capsys, *args):
    code = main(["inspect", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.skipif(default_bundle_path() is None, reason="this installation lacks the default bundle")
def test_the_default_bundle_shows_its_three_rounds(capsys):
    code, out, err = _inspect(capsys)  # no argument: the shipped bundle
    assert code == 0, err
    assert "default.safetensors: mmsr bundle" in out and "x4, LR tiles of 32 px overlapping by 8" in out
    assert "verified against the SHA-256" in out
    for config in ("4-2r", "8-6r", "16-8r"):
        assert config in out
    assert "training: 3 `mmsr train` rounds, oldest first" in out
    # The rounds of benchmarks/README.md, in the order they ran.
    first, second, third = (out.index(f"round {n}:") for n in (1, 2, 3))
    assert first < second < third
    assert "4-2r 1000+0 / 8-6r 1000+0 / 16-8r 1000+0" in out[first:second]
    assert "4-2r 200+0 / 8-6r 600+0 / 16-8r 2200+0" in out[second:third]
    assert "4-2r 150+0 / 8-6r 450+0 / 16-8r 1400+0" in out[third:]


@pytest.mark.skipif(default_bundle_path() is None, reason="this installation lacks the default bundle")
def test_json_matches_the_loaded_bundle(capsys):
    code, out, _ = _inspect(capsys, "default", "--json")
    assert code == 0
    summary = json.loads(out)
    bundle = load_bundle(default_bundle_path())
    assert [c["config"] for c in summary["classes"]] == [c.name for c in bundle.configs]
    # What the generators would count as their parameters (BatchNorm's running statistics are not).
    assert [c["parameters"] for c in summary["classes"]] == [
        sum(p.numel() for p in generator.parameters()) for generator in bundle.generators()
    ]
    assert summary["boundaries"] == list(bundle.boundaries) and summary["scale"] == 4
    created = [r["created"] for r in summary["training"]]
    assert len(created) == 3 and created == sorted(created)
    assert all("init" not in r for r in summary["training"])
    # The last round's record describes the classes as they are in the file.
    assert [c["last_round"]["pixel_steps"] for c in summary["classes"]] == [150, 450, 1400]


def test_a_random_bundle_has_no_training_record(tmp_path, capsys):
    path = save_bundle(Bundle.random(["1-2w8", "2-2w8"], threshold=0.01, boundaries=[0.05], scale=2, seed=3),
                       tmp_path / "r.safetensors")
    code, out, _ = _inspect(capsys, path)
    assert code == 0
    assert "no record of `mmsr train`" in out and "random" in out
    assert "TVAT < 0.05" in out and "TVAT >= 0.05" in out


def test_a_bundle_without_a_digest_says_its_weights_were_not_checked(tmp_path, capsys):
    path = save_bundle(Bundle.random(["1-2w8"], threshold=0, boundaries=[]), tmp_path / "old.safetensors")
    _rewrite(path, edit_header=lambda header: header.pop("tensors_sha256"))
    code, out, _ = _inspect(capsys, path)
    assert code == 0
    assert "not checked: the file has no SHA-256" in out and "every tile" in out


def test_damaged_weights_are_refused_by_name(tmp_path, capsys):
    path = save_bundle(Bundle.random(["1-2w8"], threshold=0, boundaries=[]), tmp_path / "b.safetensors")
    digest = _read_raw(path)[1]["tensors_sha256"]

    def nudge_one_weight(tensors):
        name = next(iter(tensors))
        tensors[name] = tensors[name] + 1

    _rewrite(path, edit_tensors=nudge_one_weight)  # _rewrite drops the digest when it edits tensors ...
    _rewrite(path, edit_header=lambda header: header.update(tensors_sha256=digest))  # ... so put it back
    code, out, err = _inspect(capsys, path)
    assert code == 1 and out == ""
    assert str(path) in err and "do not match the SHA-256" in err


def test_a_missing_file_is_named(tmp_path, capsys):
    code, _, err = _inspect(capsys, tmp_path / "nope.safetensors")
    assert code == 1 and "nope.safetensors: no such bundle file" in err


def test_training_rounds_follow_the_init_chain_oldest_first():
    first = {"command": "mmsr train a", "created": "1"}
    second = {"command": "mmsr train b", "created": "2", "init": {"bundle": "a.safetensors", "provenance": first}}
    third = {"command": "mmsr train c", "created": "3", "init": {"bundle": "b.safetensors", "provenance": second}}
    assert [r["created"] for r in training_rounds(third)] == ["1", "2", "3"]
    assert training_rounds({"source": "random", "seed": 0}) == []
