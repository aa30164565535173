"""``mmsr train --init BUNDLE``: start every class's generator from a trained bundle's weights.

Fine-tuning (the shipped default on one's own photos, or a run that goes on where an earlier one
stopped, on another machine) needs the routing the weights were trained for: the same scale, the
same model per class, the same TVAT threshold and class boundaries. So the bundle supplies those
unless the command gives them, and a command that gives different ones is refused: a generator
trained on class k's crops would otherwise be tuned on another class's.

Only generator weights come from the bundle (a bundle holds no discriminator and no optimiser
state): the optimisers and any GAN phase's discriminator start fresh.

A class may also start from a **deeper** generator of the same width and input skip: it keeps that
generator's head, trunk, upsampler and tail and its first X residual blocks (the blocks all add to
one skip path, so the first X of them are a working shallower network). And a **one-model** bundle
may seed every class of a multi-class run, each cut to its depth: a 16-8r trained on the most
textured crops (``--baseline --baseline-class``) then starts MMSR's shallow classes, which reach
in 100 fine-tuning steps what 1000 from scratch do (benchmarks/paper/shallow_from_deep_cpu/). Such a
bundle has no routing, so the run calibrates its own boundaries (or takes ``--boundaries``).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from mmsr.bundle import Bundle, save_bundle
    >>> path = save_bundle(Bundle.random(["2-2w8", "4-2w8"], threshold=0.01, boundaries=[0.1]),
    ...                    Path(tempfile.mkdtemp()) / "b.safetensors")
    >>> source = read_init_source(str(path))
    >>> source.configs, source.boundaries
    (('2-2w8', '4-2w8'), (0.1,))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from torch import Tensor

from ..bundle import BundleError, load_bundle, read_bundle_metadata, resolve_bundle_path
from ..models import ModelConfig

__all__ = [
    "InitSource",
    "check_init_fits",
    "first_blocks",
    "generator_fits",
    "init_state_dict",
    "read_init_source",
    "residual_blocks",
]


@dataclass(frozen=True)
class InitSource:
    """What ``--init`` names: the bundle file and the routing its weights were trained for."""

    path: str
    scale: int
    configs: tuple[str, ...]
    boundaries: tuple[float, ...]
    threshold: float
    provenance: dict

    def seeds_every_class(self, classes: int) -> bool:
        """A one-model bundle starting each of a multi-class run's classes (it brings no routing)."""
        return len(self.configs) == 1 and classes > 1

    def model_for(self, index: int) -> str:
        """The model class ``index`` starts from."""
        return self.configs[0 if len(self.configs) == 1 else index]


def generator_fits(config: str, source: str) -> bool:
    """Whether a ``config`` generator can start from a ``source`` one: the same, or a deeper one of the
    same width and input skip (cut to its first blocks). Discriminator depths do not matter: a bundle
    holds no discriminator.

    Example:
        >>> generator_fits("4-2r", "16-8r"), generator_fits("16-8r", "4-2r"), generator_fits("4-2", "16-8r")
        (True, False, False)
    """
    mine, theirs = ModelConfig.parse(config), ModelConfig.parse(source)
    return mine.channels == theirs.channels and mine.input_skip == theirs.input_skip and mine.blocks <= theirs.blocks


def read_init_source(text: str) -> InitSource:
    """Resolve ``--init`` (a bundle file, or ``default``) and read its header, not its weights.

    Raises:
        ValueError: naming ``--init`` and the file, when it is missing or not a valid bundle.
    """
    try:
        path = resolve_bundle_path(text)
    except BundleError as err:
        raise ValueError(f"--init {err}") from None
    try:
        meta = read_bundle_metadata(path)
    except BundleError as err:
        raise ValueError(f"--init: {err}") from None
    return InitSource(
        path=str(path.resolve()),
        scale=int(meta["scale"]),
        configs=tuple(str(c) for c in meta["configs"]),
        boundaries=tuple(float(b) for b in meta["boundaries"]),
        threshold=float(meta["threshold"]),
        provenance=dict(meta["provenance"]),
    )


def check_init_fits(
    source: InitSource,
    *,
    scale: int,
    configs: Sequence[str],
    boundaries: Optional[Sequence[float]],
    threshold: Optional[float],
) -> None:
    """Refuse a command whose explicit options contradict the ``--init`` bundle, naming the option.

    ``boundaries`` / ``threshold`` are None where the command left them to the bundle. For the
    baseline, pass ``boundaries=None``: its one model sees every crop.
    """
    where = f"--init {source.path}"
    if scale != source.scale:
        raise ValueError(f"{where} is a x{source.scale} bundle, but --scale is {scale}")
    seeds_every_class = source.seeds_every_class(len(configs))
    if len(configs) != len(source.configs) and not seeds_every_class:
        raise ValueError(
            f"{where} has {len(source.configs)} class(es) ({', '.join(source.configs)}), but this run trains "
            f"{len(configs)} ({', '.join(configs)}); a baseline needs a one-model bundle, and a one-model "
            "bundle may start every class"
        )
    for k, mine in enumerate(configs):
        theirs = source.model_for(k)
        if not generator_fits(mine, theirs):
            there = "its one model is" if seeds_every_class else f"class {k} is"
            raise ValueError(
                f"{where}: {there} a {theirs} model there, but this run configures {mine} for class {k}; a class "
                "starts from the same generator or a deeper one of the same width and input skip"
            )
    if seeds_every_class:
        return  # a one-model bundle has no routing for the run's classes to keep
    if boundaries is not None and tuple(boundaries) != source.boundaries:
        raise ValueError(
            f"{where} routes by boundaries {list(source.boundaries)}, but --boundaries gives {list(boundaries)}; "
            "leave --boundaries out to keep the bundle's"
        )
    if threshold is not None and threshold != source.threshold:
        raise ValueError(
            f"{where} was trained with TVAT threshold {source.threshold}, but --threshold gives {threshold}; "
            "leave --threshold out to keep the bundle's"
        )


def init_state_dict(path: str, index: int) -> dict[str, Tensor]:
    """Class ``index``'s generator weights from the bundle at ``path``, as CPU float32.

    A one-model bundle gives its model to every class (:meth:`InitSource.seeds_every_class`).
    BatchNorm's ``num_batches_tracked`` is not stored in bundles; load with ``strict=False``.
    """
    try:
        bundle = load_bundle(path)
    except BundleError as err:
        raise ValueError(f"--init: {err}") from None
    if bundle.num_classes != 1 and not 0 <= index < bundle.num_classes:
        raise ValueError(f"--init {path}: no class {index} in a bundle of {bundle.num_classes}")
    return bundle.state_dicts[0 if bundle.num_classes == 1 else index]


def _block_index(name: str) -> Optional[int]:
    """``i`` for a residual block's tensor ``body.<i>.*``; None for the head, trunk, upsampler and tail."""
    return int(name.split(".")[1]) if name.startswith("body.") else None


def residual_blocks(state: dict[str, Tensor]) -> int:
    """How many residual blocks a generator state holds."""
    return len({i for i in map(_block_index, state) if i is not None})


def first_blocks(state: dict[str, Tensor], blocks: int) -> dict[str, Tensor]:
    """A generator state cut to its first ``blocks`` residual blocks, all else kept whole.

    Example:
        >>> from mmsr.models import Generator, ModelConfig
        >>> deep = Generator.from_config(ModelConfig.parse("4-2w8"), 4).state_dict()
        >>> residual_blocks(deep), residual_blocks(first_blocks(deep, 1))
        (4, 1)
        >>> Generator.from_config(ModelConfig.parse("1-2w8"), 4).load_state_dict(first_blocks(deep, 1))
        <All keys matched successfully>
    """
    return {name: t for name, t in state.items() if (_block_index(name) or 0) < blocks}
