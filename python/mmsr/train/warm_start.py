"""``mmsr train --init BUNDLE``: start every class's generator from a trained bundle's weights.

Fine-tuning (the shipped default on one's own photos, or a run that goes on where an earlier one
stopped, on another machine) needs the routing the weights were trained for: the same scale, the
same model per class, the same TVAT threshold and class boundaries. So the bundle supplies those
unless the command gives them, and a command that gives different ones is refused: a generator
trained on class k's crops would otherwise be tuned on another class's.

Only generator weights come from the bundle (a bundle holds no discriminator and no optimiser
state): the optimisers and any GAN phase's discriminator start fresh.

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

__all__ = ["InitSource", "check_init_fits", "init_state_dict", "read_init_source"]



@dataclass(frozen=True)
class InitSource:
    """What ``--init`` names: the bundle file and the routing its weights were trained for."""

    path: str
    scale: int
    configs: tuple[str, ...]
    boundaries: tuple[float, ...]
    threshold: float
    provenance: dict


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
    if len(configs) != len(source.configs):
        raise ValueError(
            f"{where} has {len(source.configs)} class(es) ({', '.join(source.configs)}), but this run trains "
            f"{len(configs)} ({', '.join(configs)}); a baseline needs a one-model bundle"
        )
    for k, (mine, theirs) in enumerate(zip(configs, source.configs)):
        if mine != theirs:
            raise ValueError(f"{where}: class {k} is a {theirs} model there, but this run configures {mine}")
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

    BatchNorm's ``num_batches_tracked`` is not stored in bundles; load with ``strict=False``.
    """
    try:
        bundle = load_bundle(path)
    except BundleError as err:
        raise ValueError(f"--init: {err}") from None
    if not 0 <= index < bundle.num_classes:
        raise ValueError(f"--init {path}: no class {index} in a bundle of {bundle.num_classes}")
    return bundle.state_dicts[index]
