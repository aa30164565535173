"""The model bundle: one safetensors file with every texture class's generator and the routing data.

A bundle holds, for an upscaling factor, the TVAT threshold and class boundaries that route LR
tiles, one "X-Y" config and one SRResNet state_dict per class (smooth -> complex), the default
tile and overlap, and provenance. On disk it is a single safetensors file:

- tensors are named ``class{k}.{state_dict key}``; BatchNorm's ``num_batches_tracked`` counter is
  training bookkeeping and is not stored;
- weights are stored in ``weights_dtype`` (float16 by default, which keeps a five-class x64 bundle
  near 9 MB), except BatchNorm running statistics, which stay float32: a running variance below
  float16's normal range (6e-5) would lose most of its digits, and it divides the activations;
- the header metadata key ``"mmsr"`` holds JSON with ``format_version`` (1), ``mmsr_version``,
  ``weights_dtype``, ``scale``, ``threshold``, ``boundaries``, ``configs`` (names), ``tile_size``,
  ``overlap`` and ``provenance``, and ``tensors_sha256``: a SHA-256 over every stored tensor (name,
  dtype, shape and bytes, in name order). safetensors itself notices a truncated file but not a
  flipped bit in the weights, which would upscale into wrong pixels without a word; loading
  recomputes the digest and refuses a file that does not match. Bundles written before the
  digest existed have none and load unchecked.

Loading reads only tensors and JSON, never pickles, so an untrusted bundle cannot run code.

Example:
    >>> import tempfile
    >>> b = Bundle.random(["2-2w16", "4-2w16"], threshold=0.01, boundaries=[0.1])
    >>> path = save_bundle(b, Path(tempfile.mkdtemp()) / "toy.safetensors")
    >>> [g.blocks for g in load_bundle(path).generators()]
    [2, 4]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional

import safetensors.torch
import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from ._checks import check_boundaries, check_real
from .atomic import write_bytes_atomically
from .models import Generator, ModelConfig

__all__ = [
    "FORMAT_VERSION",
    "Bundle",
    "BundleError",
    "WeightOverflowError",
    "default_bundle_path",
    "load_bundle",
    "resolve_bundle_path",
    "read_bundle_metadata",
    "save_bundle",
    "save_trained_bundle",
]

FORMAT_VERSION = 1
_METADATA_KEY = "mmsr"
_SCALES = (2, 3, 4)
_WEIGHT_DTYPES = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32"}
_FP32_BUFFERS = ("running_mean", "running_var")
# Largest tile_size or overlap a bundle may name (LR pixels): far past any image mmsr takes.
_MAX_TILE = 1 << 20
_UNSTORED_SUFFIX = "num_batches_tracked"
_TENSOR_NAME = re.compile(r"class([0-9]+)\.(.+)")
_METADATA_FIELDS = {
    "scale": int,
    "threshold": (int, float),
    "boundaries": list,
    "configs": list,
    "tile_size": int,
    "overlap": int,
    "provenance": dict,
}
_SHOWN_NAMES = 3  # names listed in a missing/unexpected tensor message before "..."
_DEFAULT_BUNDLE = Path(__file__).resolve().parent / "weights" / "default.safetensors"


def default_bundle_path() -> Path | None:
    """The x4 bundle shipped inside the package (``mmsr upscale``'s default), or None when absent."""
    return _DEFAULT_BUNDLE if _DEFAULT_BUNDLE.is_file() else None


class BundleError(ValueError):
    """A bundle file that cannot be loaded; the message names the file and the problem."""


class WeightOverflowError(ValueError):
    """A finite weight past the range of the ``weights_dtype`` asked for (float16 tops out at 65504).

    Attributes:
        name: the weight's name in the bundle ("class0.body.0.conv1.weight").
        largest: its largest magnitude.
    """

    def __init__(self, name: str, largest: float, dtype_name: str) -> None:
        super().__init__(f"{name} overflows {dtype_name} (its largest magnitude is {largest:.4g}); save with "
                         "weights_dtype=torch.float32")
        self.name, self.largest = name, largest


#: What the command line's ``--bundle`` / ``--init`` take to mean the shipped bundle.
DEFAULT_BUNDLE_NAME = "default"


def resolve_bundle_path(text: str | os.PathLike) -> Path:
    """A bundle argument as a path: ``"default"`` is the shipped bundle (unless a file of that
    name exists), anything else a file path.

    Raises:
        BundleError: ``"default"`` on an installation without the shipped bundle.

    Example:
        >>> resolve_bundle_path("runs/b.safetensors").name
        'b.safetensors'
    """
    if str(text) == DEFAULT_BUNDLE_NAME and not Path(text).exists():
        path = default_bundle_path()
        if path is None:
            raise BundleError("default: this installation lacks mmsr/weights/default.safetensors; reinstall mmsr")
        return path
    return Path(text)


def _mmsr_version() -> str:
    try:
        return version("mmsr")
    except PackageNotFoundError:
        return "unknown"


def _as_config(config: str | ModelConfig) -> ModelConfig:
    return config if isinstance(config, ModelConfig) else ModelConfig.parse(config)


def _list_names(names: Sequence[str]) -> str:
    shown = ", ".join(sorted(names)[:_SHOWN_NAMES])
    return shown + (", ..." if len(names) > _SHOWN_NAMES else "")


def _expected_shapes(config: ModelConfig, scale: int) -> dict[str, torch.Size]:
    # Built on the meta device: the shapes cost no memory and no initialisation work.
    with torch.device("meta"):
        generator = Generator.from_config(config, scale)
    return {k: v.shape for k, v in generator.state_dict().items() if not k.endswith(_UNSTORED_SUFFIX)}


def _check_state_dict(k: int, config: ModelConfig, scale: int, state_dict: dict[str, Tensor]) -> None:
    where = f"class {k} ({config.name})"
    expected = _expected_shapes(config, scale)
    missing = expected.keys() - state_dict.keys()
    if missing:
        names = [f"class{k}.{n}" for n in missing]
        raise ValueError(f"{where}: {len(missing)} missing tensors: {_list_names(names)}")
    unexpected = state_dict.keys() - expected.keys()
    if unexpected:
        names = [f"class{k}.{n}" for n in unexpected]
        raise ValueError(f"{where}: {len(unexpected)} unexpected tensors: {_list_names(names)}")
    for name, shape in expected.items():
        tensor = state_dict[name]
        if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
            raise ValueError(f"{where}: class{k}.{name} should be a floating-point tensor")
        if tensor.shape != shape:
            raise ValueError(
                f"{where}: class{k}.{name} has shape {tuple(tensor.shape)}, expected {tuple(shape)} "
                f"for a {config.name} generator at scale {scale}"
            )


@dataclass(eq=False, repr=False)
class Bundle:
    """Every class's generator plus the data that routes tiles to them.

    Attributes:
        scale: upscaling factor, 2, 3 or 4.
        threshold: TVAT threshold (float, >= 0) used when scoring tiles.
        boundaries: ascending TVAT class edges, ``num_classes - 1`` of them; class k holds tiles
            with ``boundaries[k-1] <= tvat < boundaries[k]``.
        configs: one ``ModelConfig`` per class, smooth -> complex (names such as "4-2" are parsed).
        state_dicts: one generator state_dict per class, ``{key: Tensor}`` on CPU; BatchNorm's
            ``num_batches_tracked`` is dropped.
        tile_size: default LR tile edge for inference (>= 1).
        overlap: default LR tile overlap, ``0 <= overlap < tile_size``.
        provenance: JSON-serialisable facts about the training run (data, iterations, wall time, ...);
            it is normalised through JSON, so tuples become lists.

    Construction validates all of this, including every tensor's name and shape against its config,
    and raises ``ValueError``.

    Example:
        >>> b = Bundle.random(["2-2w16", "4-2w16", "8-6w16"], threshold=0.01, boundaries=[0.05, 0.15])
        >>> b.num_classes, b.configs[2].name
        (3, '8-6w16')
        >>> g = b.generators()[0]
        >>> g(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 3, 32, 32])
    """

    scale: int
    threshold: float
    boundaries: tuple[float, ...]
    configs: tuple[ModelConfig, ...]
    state_dicts: tuple[dict[str, Tensor], ...]
    tile_size: int = 32
    overlap: int = 8
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale not in _SCALES:
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale!r}")
        self.threshold = check_real(self.threshold, "threshold", 0.0)

        self.configs = tuple(_as_config(c) for c in self.configs)
        if not self.configs:
            raise ValueError("a bundle needs at least one class, got no configs")
        self.boundaries = tuple(check_boundaries(self.boundaries))
        if len(self.boundaries) != self.num_classes - 1:
            raise ValueError(
                f"{self.num_classes} classes need {self.num_classes - 1} boundaries, got {len(self.boundaries)}"
            )

        for name in ("tile_size", "overlap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be an int, got {value!r}")
            if value > _MAX_TILE:
                raise ValueError(f"{name} must be at most {_MAX_TILE}, got {value}")
        if self.tile_size < 1 or not 0 <= self.overlap < self.tile_size:
            raise ValueError(f"need tile_size > overlap >= 0, got tile_size={self.tile_size}, overlap={self.overlap}")

        self.state_dicts = tuple(
            {k: v for k, v in sd.items() if not k.endswith(_UNSTORED_SUFFIX)} for sd in self.state_dicts
        )
        if len(self.state_dicts) != self.num_classes:
            raise ValueError(f"{self.num_classes} configs but {len(self.state_dicts)} state_dicts")
        for k, (config, state_dict) in enumerate(zip(self.configs, self.state_dicts)):
            _check_state_dict(k, config, self.scale, state_dict)

        if not isinstance(self.provenance, dict):
            raise ValueError(f"provenance must be a dict, got {type(self.provenance).__name__}")
        try:
            self.provenance = json.loads(json.dumps(self.provenance, allow_nan=False))
        except (TypeError, ValueError) as err:
            raise ValueError(f"provenance must be JSON-serialisable without NaN/inf: {err}") from None

    def __repr__(self) -> str:
        names = ", ".join(c.name for c in self.configs)
        return (
            f"Bundle(scale={self.scale}, configs=[{names}], threshold={self.threshold}, "
            f"boundaries={list(self.boundaries)}, tile_size={self.tile_size}, overlap={self.overlap})"
        )

    @property
    def num_classes(self) -> int:
        """Number of texture classes, one generator each."""
        return len(self.configs)

    @property
    def deepest_class(self) -> int:
        """The class with the most residual blocks (ties: the widest, then the last).

        Example:
            >>> Bundle.random(["2-2w8", "4-2w8", "4-2w16"], threshold=0, boundaries=[0.1, 0.2]).deepest_class
            2
        """
        configs = self.configs
        return max(range(len(configs)), key=lambda k: (configs[k].blocks, configs[k].channels, k))

    def generators(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> list[Generator]:
        """Fresh generators with the bundle's weights, in eval mode with ``requires_grad=False``.

        Args:
            device: where to put them.
            dtype: floating parameter dtype (float32, float16 or bfloat16).

        Returns:
            ``num_classes`` generators, smooth -> complex; each maps Tensor[B, 3, h, w] to
            Tensor[B, 3, h * scale, w * scale].

        Example:
            >>> [g.blocks for g in Bundle.random(["2-2w8"], threshold=0, boundaries=[]).generators()]
            [2]
        """
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        generators = []
        for config, state_dict in zip(self.configs, self.state_dicts):
            generator = Generator.from_config(config, self.scale)
            # Keys were checked in __post_init__; only num_batches_tracked is absent, and it keeps its 0.
            generator.load_state_dict(state_dict, strict=False)
            generators.append(generator.to(device=device, dtype=dtype).eval().requires_grad_(False))
        return generators

    @classmethod
    def from_generators(
        cls,
        generators: Sequence[Generator],
        configs: Sequence[str | ModelConfig],
        *,
        threshold: float,
        boundaries: Sequence[float],
        tile_size: int = 32,
        overlap: int = 8,
        provenance: dict | None = None,
    ) -> Bundle:
        """Bundle trained generators, one per class, smooth -> complex.

        The weights are copied to CPU float32. ``configs`` carries each class's "X-Y" name (the
        generator cannot know its discriminator depth) and must agree with each generator's depth
        and width; all generators must share one scale and take 3 channels.

        Example:
            >>> gens = [Generator(scale=2, blocks=1, channels=8), Generator(scale=2, blocks=2, channels=8)]
            >>> Bundle.from_generators(gens, ["1-2w8", "2-4w8"], threshold=0.0, boundaries=[0.1]).scale
            2
        """
        configs = tuple(_as_config(c) for c in configs)
        if len(generators) != len(configs):
            raise ValueError(f"got {len(generators)} generators but {len(configs)} configs")
        if not generators:
            raise ValueError("a bundle needs at least one generator")
        for k, (generator, config) in enumerate(zip(generators, configs)):
            if not isinstance(generator, Generator):
                raise ValueError(f"generators[{k}] should be an mmsr Generator, got {type(generator).__name__}")
            if (generator.blocks, generator.channels, generator.input_skip) != (
                config.blocks,
                config.channels,
                config.input_skip,
            ):
                skip = "with" if generator.input_skip else "without"
                raise ValueError(
                    f"generators[{k}] has {generator.blocks} blocks, width {generator.channels} and {skip} the "
                    f"input skip, but its config is {config.name}"
                )
            if generator.in_channels != 3:
                raise ValueError(f"generators[{k}] takes {generator.in_channels} channels; bundles hold RGB models")
        scales = {g.scale for g in generators}
        if len(scales) != 1:
            raise ValueError(f"all generators must share one scale, got {sorted(scales)}")
        state_dicts = tuple(
            {k: v.detach().to(device="cpu", dtype=torch.float32, copy=True) for k, v in g.state_dict().items()}
            for g in generators
        )
        return cls(
            scale=scales.pop(),
            threshold=threshold,
            boundaries=tuple(boundaries),
            configs=configs,
            state_dicts=state_dicts,
            tile_size=tile_size,
            overlap=overlap,
            provenance=dict(provenance or {}),
        )

    @classmethod
    def random(
        cls,
        configs: Sequence[str | ModelConfig],
        *,
        scale: int = 4,
        threshold: float,
        boundaries: Sequence[float],
        tile_size: int = 32,
        overlap: int = 8,
        seed: int = 0,
    ) -> Bundle:
        """A bundle of freshly initialised generators, for tests and the untrained baseline.

        The same ``seed`` gives the same weights; the global RNG state is left untouched.
        Provenance records ``{"source": "random", "seed": seed}``.

        Example:
            >>> a = Bundle.random(["2-2w8"], threshold=0.0, boundaries=[], seed=3)
            >>> b = Bundle.random(["2-2w8"], threshold=0.0, boundaries=[], seed=3)
            >>> torch.equal(a.state_dicts[0]["tail.weight"], b.state_dicts[0]["tail.weight"])
            True
        """
        configs = tuple(_as_config(c) for c in configs)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generators = [Generator.from_config(c, scale) for c in configs]
        return cls.from_generators(
            generators,
            configs,
            threshold=threshold,
            boundaries=boundaries,
            tile_size=tile_size,
            overlap=overlap,
            provenance={"source": "random", "seed": seed},
        )


def _stored_tensor(name: str, tensor: Tensor, weights_dtype: torch.dtype) -> Tensor:
    dtype = torch.float32 if name.rsplit(".", 1)[-1] in _FP32_BUFFERS else weights_dtype
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} holds NaN or inf values")
    # Always a copy: safetensors refuses tensors that share memory (two classes given one state_dict,
    # or views of one buffer), and the file should not depend on how the caller's tensors were laid out.
    stored = tensor.detach().to(device="cpu", dtype=dtype, memory_format=torch.contiguous_format, copy=True)
    if not torch.isfinite(stored).all():
        raise WeightOverflowError(name, float(tensor.detach().abs().max()), _WEIGHT_DTYPES[dtype])
    return stored


def _tensors_digest(tensors: dict[str, Tensor]) -> str:
    """SHA-256 over the tensors as stored: each one's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # A uint8 view reads the stored bytes of any dtype, bfloat16 included (numpy has none).
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_bundle(bundle: Bundle, path: str | os.PathLike, *, weights_dtype: torch.dtype = torch.float16) -> Path:
    """Write ``bundle`` to one safetensors file, atomically.

    Args:
        bundle: the bundle to write.
        path: the destination; an existing file is replaced only once the new one is complete.
        weights_dtype: float16 (default), bfloat16 or float32 for weights; BatchNorm running
            statistics are always float32.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: for an unsupported ``weights_dtype`` or a weight that is not finite in it.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "b.safetensors"
        >>> save_bundle(Bundle.random(["2-2w8"], threshold=0, boundaries=[]), path).name
        'b.safetensors'
    """
    if not isinstance(bundle, Bundle):
        raise TypeError(f"bundle must be an mmsr Bundle, got {type(bundle).__name__}")
    path = Path(path)
    if weights_dtype not in _WEIGHT_DTYPES:
        raise ValueError(f"weights_dtype must be torch.float16, torch.bfloat16 or torch.float32, got {weights_dtype}")
    tensors = {
        f"class{k}.{name}": _stored_tensor(f"class{k}.{name}", tensor, weights_dtype)
        for k, state_dict in enumerate(bundle.state_dicts)
        for name, tensor in state_dict.items()
    }
    header = {
        "format_version": FORMAT_VERSION,
        "mmsr_version": _mmsr_version(),
        "weights_dtype": _WEIGHT_DTYPES[weights_dtype],
        "scale": bundle.scale,
        "threshold": bundle.threshold,
        "boundaries": list(bundle.boundaries),
        "configs": [c.name for c in bundle.configs],
        "tile_size": bundle.tile_size,
        "overlap": bundle.overlap,
        "provenance": bundle.provenance,
        "tensors_sha256": _tensors_digest(tensors),
    }
    metadata = {_METADATA_KEY: json.dumps(header, allow_nan=False)}
    write_bytes_atomically(path, safetensors.torch.save(tensors, metadata=metadata))
    return path


def save_trained_bundle(bundle: Bundle, path: str | os.PathLike) -> Optional[WeightOverflowError]:
    """Write a trained bundle in float16, as mmsr ships them, or in float32 (twice the size) when a
    weight is past float16's range, so that a run's result is never lost to the file format.

    Returns:
        the overflow that made the file float32 (its weight's name and magnitude), else None.

    Raises:
        ValueError: a weight that is NaN or infinite.

    Example:
        >>> import tempfile
        >>> b = Bundle.random(["2-2w8"], threshold=0, boundaries=[])
        >>> b.state_dicts[0]["tail.weight"].fill_(1e5)  # doctest: +ELLIPSIS
        tensor(...)
        >>> save_trained_bundle(b, Path(tempfile.mkdtemp()) / "b.safetensors").name
        'class0.tail.weight'
    """
    try:
        save_bundle(bundle, path)
        return None
    except WeightOverflowError as overflow:
        save_bundle(bundle, path, weights_dtype=torch.float32)
        return overflow


def _parse_metadata(path: Path, metadata: dict[str, str] | None) -> dict:
    if not metadata or _METADATA_KEY not in metadata:
        raise BundleError(f"{path}: no '{_METADATA_KEY}' metadata in the header; not an mmsr bundle")
    try:
        header = json.loads(metadata[_METADATA_KEY])
    except json.JSONDecodeError as err:
        raise BundleError(f"{path}: malformed '{_METADATA_KEY}' metadata: invalid JSON ({err})") from None
    if not isinstance(header, dict):
        raise BundleError(f"{path}: malformed '{_METADATA_KEY}' metadata: expected a JSON object")
    format_version = header.get("format_version")
    if format_version != FORMAT_VERSION:
        raise BundleError(
            f"{path}: unsupported format_version {format_version!r}; this mmsr reads format_version {FORMAT_VERSION}"
        )
    for key, types in _METADATA_FIELDS.items():
        if key not in header:
            raise BundleError(f"{path}: malformed '{_METADATA_KEY}' metadata: missing field '{key}'")
        value = header[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise BundleError(
                f"{path}: malformed '{_METADATA_KEY}' metadata: field '{key}' has type {type(value).__name__}"
            )
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in header["boundaries"]):
        raise BundleError(f"{path}: malformed '{_METADATA_KEY}' metadata: boundaries must be numbers")
    if not all(isinstance(c, str) for c in header["configs"]):
        raise BundleError(f"{path}: malformed '{_METADATA_KEY}' metadata: configs must be strings like '8-6'")
    digest = header.get("tensors_sha256")  # optional: bundles written before it existed have none
    if digest is not None and not (isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
        raise BundleError(f"{path}: malformed '{_METADATA_KEY}' metadata: tensors_sha256 must be 64 hex digits")
    return header


@contextmanager
def _reading(path: Path):
    """``safe_open`` on a bundle file; any failure to open or read it is a BundleError naming it."""
    if not path.exists():
        raise BundleError(f"{path}: no such bundle file")
    if not path.is_file():
        raise BundleError(f"{path}: not a file")
    try:
        with safe_open(path, framework="pt") as f:
            yield f
    except (SafetensorError, OSError) as err:
        raise BundleError(f"{path}: not a readable safetensors file ({err})") from None


def read_bundle_metadata(path: str | os.PathLike) -> dict:
    """The bundle's ``"mmsr"`` header as a dict, without reading any weights.

    Besides the ``Bundle`` fields it holds ``format_version``, ``mmsr_version`` (of the writer)
    and ``weights_dtype``; useful for inspecting a bundle cheaply.

    Raises:
        BundleError: for a missing or unreadable file or missing or malformed metadata.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "b.safetensors"
        >>> read_bundle_metadata(save_bundle(Bundle.random(["2-2w8"], threshold=0, boundaries=[]), path))["configs"]
        ['2-2w8']
    """
    path = Path(path)
    with _reading(path) as f:
        metadata = f.metadata()
    return _parse_metadata(path, metadata)


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read a bundle written by :func:`save_bundle`; weights come back as CPU float32.

    Only safetensors tensors and JSON are read, so loading never runs code from the file.

    Raises:
        BundleError: naming the file, when it is missing, not a (complete) safetensors file, has
            missing or malformed ``"mmsr"`` metadata or an unknown ``format_version``, when its
            tensors do not match its ``tensors_sha256``, or when its routing data or any class's
            tensors do not fit its configs.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "b.safetensors"
        >>> load_bundle(save_bundle(Bundle.random(["2-2w8"], threshold=0, boundaries=[]), path)).configs[0].name
        '2-2w8'
    """
    path = Path(path)
    with _reading(path) as f:
        header = _parse_metadata(path, f.metadata())
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    if header.get("tensors_sha256") is not None and _tensors_digest(tensors) != header["tensors_sha256"]:
        raise BundleError(f"{path}: its weights do not match the SHA-256 in its header (tensors_sha256); the file is "
                          "damaged: copy or download it again, or retrain")

    num_classes = len(header["configs"])
    state_dicts: list[dict[str, Tensor]] = [{} for _ in range(num_classes)]
    for name, tensor in tensors.items():
        match = _TENSOR_NAME.fullmatch(name)
        if match is None or int(match.group(1)) >= num_classes:
            raise BundleError(f"{path}: unexpected tensor '{name}' for a bundle of {num_classes} classes")
        if not tensor.is_floating_point():
            raise BundleError(f"{path}: tensor '{name}' has dtype {tensor.dtype}, expected floating point")
        if not bool(torch.isfinite(tensor).all()):
            # save_bundle never writes one; a NaN weight would come out as black or NaN images.
            raise BundleError(f"{path}: tensor '{name}' holds NaN or inf values; the file is damaged")
        if name.endswith(".running_var") and bool((tensor < 0).any()):
            # A variance is never negative; BatchNorm would take its square root: NaN images.
            raise BundleError(f"{path}: tensor '{name}' holds negative variances; the file is damaged")
        state_dicts[int(match.group(1))][match.group(2)] = tensor.float()
    try:
        return Bundle(
            scale=header["scale"],
            threshold=header["threshold"],
            boundaries=tuple(header["boundaries"]),
            configs=tuple(ModelConfig.parse(c) for c in header["configs"]),
            state_dicts=tuple(state_dicts),
            tile_size=header["tile_size"],
            overlap=header["overlap"],
            provenance=header["provenance"],
        )
    except (ValueError, TypeError) as err:
        raise BundleError(f"{path}: {err}") from None
