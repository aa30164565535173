"""Tests for mmsr.bundle: the Bundle type, safetensors save/load, atomic writes and load errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mmsr.bundle import Bundle, BundleError, default_bundle_path, load_bundle, read_bundle_metadata, save_bundle
from mmsr.models import PAPER_CONFIGS, Generator, ModelConfig

CONFIGS = ("1-2w8", "2-4w8", "2-6w12")
THRESHOLD = 0.01
BOUNDARIES = (0.05, 0.15)


def _random(configs=CONFIGS, boundaries=BOUNDARIES, **kwargs) -> Bundle:
    return Bundle.random(configs, threshold=THRESHOLD, boundaries=boundaries, **kwargs)


@pytest.fixture
def bundle() -> Bundle:
    return _random()


@pytest.fixture
def saved(tmp_path, bundle) -> Path:
    return save_bundle(bundle, tmp_path / "toy.safetensors")


def _read_raw(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(path, framework="pt") as f:
        header = json.loads(f.metadata()["mmsr"])
        return {k: f.get_tensor(k) for k in f.keys()}, header


def _rewrite(path: Path, edit_tensors=None, edit_header=None) -> Path:
    tensors, header = _read_raw(path)
    if edit_tensors is not None:
        edit_tensors(tensors)
        # Written as a bundle from before the digest, so that the checks on the tensors themselves speak.
        header.pop("tensors_sha256", None)
    if edit_header is not None:
        edit_header(header)
    save_file(tensors, path, metadata={"mmsr": json.dumps(header)})
    return path


def _error_about(path: Path, problem: str) -> str:
    return re.escape(str(path)) + ": .*" + problem


# ---------------------------------------------------------------------------------------------
# Round trip


def test_round_trip_metadata(tmp_path):
    provenance = {"data": "train80", "iterations": 1000, "crop": (96, 96), "nested": {"lr": 1e-4}}
    generators = [Generator.from_config(ModelConfig.parse(c), scale=3) for c in CONFIGS]
    original = Bundle.from_generators(
        generators, CONFIGS, threshold=0.0125, boundaries=[0.0625, 0.1], tile_size=24, overlap=6, provenance=provenance
    )
    loaded = load_bundle(save_bundle(original, tmp_path / "b.safetensors"))
    assert loaded.scale == 3
    assert loaded.threshold == 0.0125
    assert loaded.boundaries == (0.0625, 0.1)
    assert loaded.configs == tuple(ModelConfig.parse(c) for c in CONFIGS)
    assert (loaded.tile_size, loaded.overlap) == (24, 6)
    assert loaded.num_classes == 3
    assert loaded.provenance == original.provenance == {**provenance, "crop": [96, 96]}


def test_round_trip_weights_fp16(bundle, saved):
    loaded = load_bundle(saved)
    for original, restored in zip(bundle.state_dicts, loaded.state_dicts):
        assert original.keys() == restored.keys()
        for name, tensor in original.items():
            assert restored[name].dtype == torch.float32
            if name.endswith(("running_mean", "running_var")):
                assert torch.equal(restored[name], tensor)
            else:
                assert torch.equal(restored[name], tensor.half().float()), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_round_trip_weights_other_dtypes(tmp_path, bundle, dtype):
    loaded = load_bundle(save_bundle(bundle, tmp_path / "b.safetensors", weights_dtype=dtype))
    for original, restored in zip(bundle.state_dicts, loaded.state_dicts):
        for name, tensor in original.items():
            assert torch.equal(restored[name], tensor.to(dtype).float()), name
    assert read_bundle_metadata(tmp_path / "b.safetensors")["weights_dtype"] == str(dtype).removeprefix("torch.")


def test_round_trip_generator_outputs(bundle, saved):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 12, 12)
    for before, after in zip(bundle.generators(), load_bundle(saved).generators()):
        with torch.no_grad():
            torch.testing.assert_close(after(x), before(x), rtol=1e-2, atol=1e-2)


def test_bn_statistics_survive_fp16(tmp_path, bundle):
    # Running variances far outside float16's normal range must come back exactly.
    extreme = torch.tensor([1e-7, 3e-6, 1e5, 2.0e5, 1.0, 0.5, 1e-3, 7e4])
    bundle.state_dicts[0]["body.0.bn1.running_var"].copy_(extreme)
    bundle.state_dicts[0]["body.0.bn1.running_mean"].copy_(-extreme)
    loaded = load_bundle(save_bundle(bundle, tmp_path / "b.safetensors"))
    assert torch.equal(loaded.state_dicts[0]["body.0.bn1.running_var"], extreme)
    assert torch.equal(loaded.state_dicts[0]["body.0.bn1.running_mean"], -extreme)


def test_file_layout(bundle, saved):
    tensors, header = _read_raw(saved)
    assert all(re.fullmatch(r"class[0-2]\..+", name) for name in tensors)
    assert not any(name.endswith("num_batches_tracked") for name in tensors)
    assert tensors["class0.head.0.weight"].dtype == torch.float16
    assert tensors["class0.trunk.1.running_var"].dtype == torch.float32
    assert header["format_version"] == 1
    assert header["configs"] == list(CONFIGS)
    assert header["boundaries"] == list(BOUNDARIES)
    assert isinstance(header["mmsr_version"], str) and header["mmsr_version"]
    assert read_bundle_metadata(saved) == header


def test_one_class_bundle(tmp_path):
    # The plain-SRGAN baseline: one class, no boundaries.
    single = Bundle.random(["3-8w8"], scale=2, threshold=0.0, boundaries=[])
    loaded = load_bundle(save_bundle(single, tmp_path / "srgan.safetensors"))
    assert loaded.num_classes == 1 and loaded.boundaries == ()
    (g,) = loaded.generators()
    assert g(torch.rand(1, 3, 9, 7)).shape == (1, 3, 18, 14)


def test_paper_bundle_fits_size_budget(tmp_path):
    path = save_bundle(_random(PAPER_CONFIGS, boundaries=(0.05, 0.1, 0.2, 0.3)), tmp_path / "paper.safetensors")
    assert path.stat().st_size <= 15_000_000


def test_a_trained_bundle_is_float16_unless_a_weight_is_past_its_range(tmp_path, bundle):
    from mmsr.bundle import WeightOverflowError, read_bundle_metadata, save_trained_bundle

    assert save_trained_bundle(bundle, tmp_path / "a.safetensors") is None
    assert read_bundle_metadata(tmp_path / "a.safetensors")["weights_dtype"] == "float16"
    bundle.state_dicts[1]["tail.weight"][0, 0, 0, 0] = -7e4
    overflow = save_trained_bundle(bundle, tmp_path / "b.safetensors")
    assert isinstance(overflow, WeightOverflowError) and overflow.name == "class1.tail.weight"
    assert overflow.largest == 7e4
    assert read_bundle_metadata(tmp_path / "b.safetensors")["weights_dtype"] == "float32"
    assert float(load_bundle(tmp_path / "b.safetensors").state_dicts[1]["tail.weight"][0, 0, 0, 0]) == -7e4
    bundle.state_dicts[0]["head.0.bias"][0] = float("inf")
    with pytest.raises(ValueError, match=r"class0\.head\.0\.bias holds NaN or inf"):
        save_trained_bundle(bundle, tmp_path / "c.safetensors")


def test_save_rejects_overflow_and_non_finite(tmp_path, bundle):
    bundle.state_dicts[1]["tail.weight"][0, 0, 0, 0] = 1e6
    with pytest.raises(ValueError, match=r"class1\.tail\.weight overflows float16"):
        save_bundle(bundle, tmp_path / "b.safetensors")
    assert load_bundle(save_bundle(bundle, tmp_path / "b.safetensors", weights_dtype=torch.float32))
    bundle.state_dicts[2]["head.0.bias"][0] = float("nan")
    with pytest.raises(ValueError, match=r"class2\.head\.0\.bias holds NaN or inf"):
        save_bundle(bundle, tmp_path / "c.safetensors", weights_dtype=torch.float32)
    assert not (tmp_path / "c.safetensors").exists()


def test_save_rejects_bad_dtype(tmp_path, bundle):
    with pytest.raises(ValueError, match="weights_dtype must be"):
        save_bundle(bundle, tmp_path / "b.safetensors", weights_dtype=torch.int8)


def test_save_accepts_str_path_and_returns_path(tmp_path, bundle):
    path = save_bundle(bundle, str(tmp_path / "b.safetensors"))
    assert isinstance(path, Path) and path.is_file()


def test_save_accepts_classes_sharing_one_state_dict(tmp_path):
    # Two classes given the very same tensors (e.g. one model routed twice) must save and load, not
    # trip safetensors' shared-memory check.
    state_dict = _random(["2-2w8"], boundaries=()).state_dicts[0]
    shared = Bundle(
        scale=4, threshold=THRESHOLD, boundaries=(0.1,), configs=("2-2w8", "2-2w8"), state_dicts=(state_dict, state_dict)
    )
    loaded = load_bundle(save_bundle(shared, tmp_path / "b.safetensors", weights_dtype=torch.float32))
    for k in range(2):
        for name, tensor in state_dict.items():
            assert torch.equal(loaded.state_dicts[k][name], tensor.float()), (k, name)


# ---------------------------------------------------------------------------------------------
# Atomic writes


def test_save_leaves_no_temp_file(tmp_path, bundle):
    path = save_bundle(bundle, tmp_path / "b.safetensors")
    save_bundle(bundle, path)
    assert list(tmp_path.iterdir()) == [path]


def test_save_replaces_existing_file(tmp_path, saved):
    other = _random(["2-2w8"], boundaries=())
    save_bundle(other, saved)
    assert [c.name for c in load_bundle(saved).configs] == ["2-2w8"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["oserror", "interrupt"])
def test_failed_save_keeps_old_file_and_no_temp(tmp_path, bundle, monkeypatch, failing, error):
    path = tmp_path / "b.safetensors"
    path.write_bytes(b"old bundle")

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(type(error)):
        save_bundle(bundle, path)
    monkeypatch.undo()
    assert path.read_bytes() == b"old bundle"
    assert list(tmp_path.iterdir()) == [path]


# ---------------------------------------------------------------------------------------------
# Generators


def test_generators_are_frozen_eval_copies(bundle):
    generators = bundle.generators(dtype=torch.float64)
    assert [(g.blocks, g.channels, g.scale) for g in generators] == [(1, 8, 4), (2, 8, 4), (2, 12, 4)]
    for g, state_dict in zip(generators, bundle.state_dicts):
        assert not g.training
        assert all(not p.requires_grad and p.dtype == torch.float64 for p in g.parameters())
        torch.testing.assert_close(g.tail.weight.float(), state_dict["tail.weight"])
    with torch.no_grad():
        generators[0].tail.weight.zero_()
    assert bundle.state_dicts[0]["tail.weight"].abs().sum() > 0


def test_generators_rejects_integer_dtype(bundle):
    with pytest.raises(ValueError, match="floating-point dtype"):
        bundle.generators(dtype=torch.int32)


def test_from_generators_copies_weights():
    torch.manual_seed(0)
    g = Generator(scale=2, blocks=1, channels=8)
    bundle = Bundle.from_generators([g], ["1-2w8"], threshold=0.0, boundaries=[])
    assert bundle.scale == 2
    assert bundle.provenance == {}
    for name, tensor in g.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(bundle.state_dicts[0][name], tensor)
    with torch.no_grad():
        g.tail.weight.zero_()
    assert bundle.state_dicts[0]["tail.weight"].abs().sum() > 0


@pytest.mark.parametrize(
    "generators, configs, match",
    [
        ([Generator(2, 1, 8)], ["2-2w8"],
         r"generators\[0\] has 1 blocks, width 8 and without the input skip, but its config is 2-2w8"),
        ([Generator(2, 1, 8)], ["1-2w8r"], "but its config is 1-2w8r"),
        ([Generator(2, 1, 8, input_skip=True)], ["1-2w8"], "with the input skip, but its config is 1-2w8"),
        ([Generator(2, 1, 8)], ["1-2w16"], "but its config is 1-2w16"),
        ([Generator(2, 1, 8), Generator(4, 1, 8)], ["1-2w8", "1-2w8"], "share one scale"),
        ([Generator(2, 1, 8)], ["1-2w8", "1-2w8"], "1 generators but 2 configs"),
        ([], [], "at least one generator"),
        ([torch.nn.Conv2d(3, 3, 3)], ["1-2w8"], "should be an mmsr Generator"),
        ([Generator(2, 1, 8, in_channels=1)], ["1-2w8"], "RGB"),
    ],
)
def test_from_generators_rejects_mismatch(generators, configs, match):
    with pytest.raises(ValueError, match=match):
        Bundle.from_generators(generators, configs, threshold=0.0, boundaries=[0.1] * (len(configs) - 1))


def test_random_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = _random(seed=7), _random(seed=7), _random(seed=8)
    assert torch.equal(torch.rand(3), expected)
    for sa, sb, sc in zip(a.state_dicts, b.state_dicts, c.state_dicts):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(a.state_dicts[0]["head.0.weight"], c.state_dicts[0]["head.0.weight"])
    assert a.provenance == {"source": "random", "seed": 7}


def test_repr_is_short(bundle):
    text = repr(bundle)
    assert text.startswith("Bundle(scale=4, configs=[1-2w8, 2-4w8, 2-6w12]")
    assert len(text) < 200


# ---------------------------------------------------------------------------------------------
# Validation on construction


def _fields(**overrides) -> dict:
    bundle = _random()
    fields = dict(
        scale=bundle.scale,
        threshold=bundle.threshold,
        boundaries=bundle.boundaries,
        configs=bundle.configs,
        state_dicts=bundle.state_dicts,
        tile_size=32,
        overlap=8,
    )
    return {**fields, **overrides}


def _without(state_dicts, k, name):
    copy = [dict(sd) for sd in state_dicts]
    del copy[k][name]
    return tuple(copy)


def _reshaped(state_dicts, k, name, shape):
    copy = [dict(sd) for sd in state_dicts]
    copy[k][name] = torch.zeros(shape)
    return tuple(copy)


_STATE_DICTS = _random().state_dicts


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(scale=5), "scale must be 2, 3 or 4"),
        (dict(scale=4.0), "scale must be 2, 3 or 4"),
        (dict(threshold=-0.1), "threshold must be >= 0"),
        (dict(threshold=float("nan")), "threshold must be a finite number"),
        (dict(boundaries=(0.2, 0.1)), "strictly ascending"),
        (dict(boundaries=(0.1, 0.1)), "strictly ascending"),
        (dict(boundaries=(0.1, 0.1 + 1e-12)), r"strictly ascending \(in float32\)"),
        (dict(boundaries=(0.1,)), "3 classes need 2 boundaries, got 1"),
        (dict(boundaries=(0.1, float("inf"))), r"boundaries\[1\] must be a finite number"),
        (dict(configs=(), state_dicts=()), "at least one class"),
        (dict(configs=("1-2w8", "bad", "2-6w12")), "invalid model config 'bad'"),
        (dict(state_dicts=_STATE_DICTS[:2]), "3 configs but 2 state_dicts"),
        (dict(tile_size=8, overlap=8), "need tile_size > overlap >= 0"),
        (dict(overlap=-1), "need tile_size > overlap >= 0"),
        (dict(tile_size=0, overlap=0), "need tile_size > overlap >= 0"),
        (dict(tile_size=32.0), "tile_size must be an int"),
        (dict(provenance={"x": object()}), "JSON-serialisable"),
        (dict(provenance={"loss": float("nan")}), "JSON-serialisable"),
        (dict(provenance=["x"]), "provenance must be a dict"),
        (
            dict(state_dicts=_without(_STATE_DICTS, 1, "body.1.conv2.weight")),
            r"class 1 \(2-4w8\): 1 missing tensors: class1\.body\.1\.conv2\.weight",
        ),
        (
            dict(state_dicts=_reshaped(_STATE_DICTS, 2, "tail.weight", (3, 8, 9, 9))),
            r"class2\.tail\.weight has shape \(3, 8, 9, 9\), expected \(3, 12, 9, 9\)",
        ),
        (
            dict(state_dicts=_reshaped(_STATE_DICTS, 0, "extra.weight", (1,))),
            r"class 0 \(1-2w8\): 1 unexpected tensors: class0\.extra\.weight",
        ),
        (dict(configs=("1-2w8", "3-4w8", "2-6w12")), r"class 1 \(3-4w8\): 13 missing tensors: class1\.body\.2\."),
        (dict(scale=2), r"class 0 \(1-2w8\): 3 unexpected tensors: class0\.upsample\.1\."),
    ],
)
def test_bundle_validates_fields(overrides, match):
    with pytest.raises(ValueError, match=match):
        Bundle(**_fields(**overrides))


def test_bundle_accepts_config_names_and_drops_batch_counter():
    state_dicts = tuple({**sd, "head.1.num_batches_tracked": torch.tensor(5)} for sd in _STATE_DICTS)
    bundle = Bundle(**_fields(configs=CONFIGS, state_dicts=state_dicts))
    assert bundle.configs[1] == ModelConfig(2, 4, 8)
    assert not any(k.endswith("num_batches_tracked") for sd in bundle.state_dicts for k in sd)


# ---------------------------------------------------------------------------------------------
# Load errors: every one is a BundleError that names the file


def test_load_missing_file(tmp_path):
    path = tmp_path / "absent.safetensors"
    with pytest.raises(BundleError, match=_error_about(path, "no such bundle file")):
        load_bundle(path)
    with pytest.raises(BundleError, match=_error_about(path, "no such bundle file")):
        read_bundle_metadata(path)


def test_load_directory(tmp_path):
    with pytest.raises(BundleError, match=_error_about(tmp_path, "not a file")):
        load_bundle(tmp_path)


@pytest.mark.parametrize("keep", [0, 5, 100, -100, -1], ids=["empty", "5B", "100B", "minus100B", "minus1B"])
def test_load_truncated_file(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[:keep] if keep >= 0 else data[: len(data) + keep])
    with pytest.raises(BundleError, match=_error_about(saved, "not a readable safetensors file")):
        load_bundle(saved)


def test_load_not_safetensors(tmp_path, bundle):
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is not a safetensors file" * 10)
    with pytest.raises(BundleError, match=_error_about(garbage, "not a readable safetensors file")):
        load_bundle(garbage)
    # A pickle checkpoint is refused without being unpickled.
    pickled = tmp_path / "pickled.pt"
    torch.save(bundle.state_dicts[0], pickled)
    with pytest.raises(BundleError, match=_error_about(pickled, "not a readable safetensors file")):
        load_bundle(pickled)


@pytest.mark.parametrize("metadata", [None, {"format": "pt"}], ids=["none", "other"])
def test_load_missing_mmsr_metadata(tmp_path, metadata):
    path = tmp_path / "plain.safetensors"
    save_file({"class0.head.0.weight": torch.zeros(2)}, path, metadata=metadata)
    with pytest.raises(BundleError, match=_error_about(path, "no 'mmsr' metadata")):
        load_bundle(path)
    with pytest.raises(BundleError, match=_error_about(path, "no 'mmsr' metadata")):
        read_bundle_metadata(path)


@pytest.mark.parametrize(
    "raw, match",
    [("{not json", "invalid JSON"), ("[1, 2]", "expected a JSON object"), ('"text"', "expected a JSON object")],
)
def test_load_malformed_json(saved, raw, match):
    tensors, _ = _read_raw(saved)
    save_file(tensors, saved, metadata={"mmsr": raw})
    with pytest.raises(BundleError, match=_error_about(saved, "malformed 'mmsr' metadata: " + match)):
        load_bundle(saved)


def _set(key, value):
    return lambda header: header.__setitem__(key, value)


def _drop(key):
    return lambda header: header.pop(key)


@pytest.mark.parametrize(
    "edit, match",
    [
        (_set("format_version", 2), "unsupported format_version 2; this mmsr reads format_version 1"),
        (_set("format_version", "1"), "unsupported format_version '1'"),
        (_drop("format_version"), "unsupported format_version None"),
        (_drop("boundaries"), "missing field 'boundaries'"),
        (_drop("provenance"), "missing field 'provenance'"),
        (_set("scale", "4"), "field 'scale' has type str"),
        (_set("scale", True), "field 'scale' has type bool"),
        (_set("threshold", None), "field 'threshold' has type NoneType"),
        (_set("boundaries", 0.1), "field 'boundaries' has type float"),
        (_set("boundaries", ["0.05", "0.15"]), "boundaries must be numbers"),
        (_set("configs", [1, 2, 3]), "configs must be strings"),
        (_set("provenance", []), "field 'provenance' has type list"),
        (_set("configs", ["1-2w8", "8x6", "2-6w12"]), "invalid model config '8x6'"),
        (_set("boundaries", [0.15, 0.05]), "boundaries must be strictly ascending"),
        (_set("boundaries", [0.05]), "3 classes need 2 boundaries, got 1"),
        (_set("scale", 5), "scale must be 2, 3 or 4"),
        (_set("threshold", -1), "threshold must be >= 0"),
        (_set("tile_size", 8), "need tile_size > overlap >= 0"),
        (_set("configs", ["1-2w8", "3-4w8", "2-6w12"]), r"class 1 \(3-4w8\): 13 missing tensors"),
        (
            _set("configs", ["1-2w16", "2-4w8", "2-6w12"]),
            r"class0\.head\.0\.weight has shape \(8, 3, 9, 9\), expected \(16,",
        ),
        (_set("configs", ["1-2w8", "2-4w8"]), "unexpected tensor 'class2"),
        (_set("scale", 2), r"class 0 \(1-2w8\): 3 unexpected tensors: class0\.upsample\.1\."),
        (_set("tensors_sha256", "abc"), "tensors_sha256 must be 64 hex digits"),
        (_set("tensors_sha256", 12), "tensors_sha256 must be 64 hex digits"),
        (_set("tensors_sha256", "0" * 64), r"do not match the SHA-256 in its header \(tensors_sha256\); the file is damaged"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_load_bad_header(saved, edit, match):
    _rewrite(saved, edit_header=edit)
    with pytest.raises(BundleError, match=_error_about(saved, match)):
        load_bundle(saved)


def _flip_a_weight_bit(path: Path) -> None:
    """One bit flipped halfway through the tensor data, past the JSON header (whose length the first
    8 bytes give): the file stays a well-formed safetensors file of finite weights."""
    data = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")
    data[start + (len(data) - start) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_bit_in_the_weights_is_refused_by_its_digest(saved):
    assert re.fullmatch(r"[0-9a-f]{64}", read_bundle_metadata(saved)["tensors_sha256"])
    _flip_a_weight_bit(saved)
    with pytest.raises(BundleError, match=_error_about(saved, r"weights do not match the SHA-256 .*damaged")):
        load_bundle(saved)
    read_bundle_metadata(saved)  # the header alone is intact, and reading it stays cheap


def test_a_bundle_written_before_the_digest_loads_unchecked(saved, bundle):
    _rewrite(saved, edit_header=_drop("tensors_sha256"))
    loaded = load_bundle(saved)
    assert torch.allclose(loaded.state_dicts[0]["tail.weight"], bundle.state_dicts[0]["tail.weight"], atol=1e-3)
    _flip_a_weight_bit(saved)
    load_bundle(saved)  # nothing to check a weight against: only the structural checks apply


def test_the_digest_covers_names_dtypes_and_shapes_not_only_bytes(tmp_path, bundle):
    plain = read_bundle_metadata(save_bundle(bundle, tmp_path / "a.safetensors"))["tensors_sha256"]
    assert read_bundle_metadata(save_bundle(bundle, tmp_path / "b.safetensors"))["tensors_sha256"] == plain
    as_bf16 = save_bundle(bundle, tmp_path / "c.safetensors", weights_dtype=torch.bfloat16)
    assert read_bundle_metadata(as_bf16)["tensors_sha256"] != plain
    load_bundle(as_bf16)  # bfloat16 bytes are hashed too (numpy has no bfloat16)


def test_the_shipped_default_bundle_carries_a_matching_digest():
    path = default_bundle_path()
    assert path is not None, "the package ships weights/default.safetensors"
    assert re.fullmatch(r"[0-9a-f]{64}", read_bundle_metadata(path)["tensors_sha256"])
    load_bundle(path)


def _delete(name):
    return lambda tensors: tensors.pop(name)


def _put(name, tensor):
    return lambda tensors: tensors.__setitem__(name, tensor)


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            _delete("class1.body.0.conv1.weight"),
            r"class 1 \(2-4w8\): 1 missing tensors: class1\.body\.0\.conv1\.weight",
        ),
        (
            lambda tensors: [tensors.pop(k) for k in list(tensors) if k.startswith("class2.")],
            r"class 2 \(2-6w12\): \d+ missing tensors: class2\.",
        ),
        (
            _put("class0.head.0.weight", torch.zeros(8, 3, 3, 3, dtype=torch.float16)),
            r"class0\.head\.0\.weight has shape \(8, 3, 3, 3\), expected \(8, 3, 9, 9\)",
        ),
        (_put("class0.head.0.weight", torch.zeros(8, 3, 9, 9, dtype=torch.int32)), "expected floating point"),
        (_put("class0.extra", torch.zeros(1)), r"class 0 \(1-2w8\): 1 unexpected tensors: class0\.extra"),
        (_put("class7.head.0.weight", torch.zeros(1)), "unexpected tensor 'class7.head.0.weight'"),
        (_put("stray", torch.zeros(1)), "unexpected tensor 'stray'"),
        (
            _put("class0.tail.weight", torch.full((3, 8, 9, 9), float("nan"), dtype=torch.float16)),
            "tensor 'class0.tail.weight' holds NaN or inf values",
        ),
    ],
    ids=["missing", "class-without-tensors", "wrong-shape", "int-dtype", "extra-key", "extra-class", "stray", "nan"],
)
def test_load_bad_tensors(saved, edit, match):
    _rewrite(saved, edit_tensors=edit)
    with pytest.raises(BundleError, match=_error_about(saved, match)):
        load_bundle(saved)


@pytest.mark.parametrize(
    "field, value, match",
    [("threshold", True, "threshold must be a number, got bool"), ("boundaries", "5", r"boundaries(\[0\])? must be a (list|number)")],
)
def test_bundle_refuses_wrong_types(field, value, match):
    kwargs = dict(threshold=0.0, boundaries=[0.1])
    kwargs[field] = value
    with pytest.raises(TypeError, match=match):
        Bundle.random(["1-2w8", "2-2w8"], **kwargs)


def test_save_refuses_what_is_not_a_bundle(tmp_path):
    with pytest.raises(TypeError, match="bundle must be an mmsr Bundle, got dict"):
        save_bundle({}, tmp_path / "b.safetensors")
    assert not (tmp_path / "b.safetensors").exists()


def test_bundle_error_is_value_error():
    assert issubclass(BundleError, ValueError)
