"""What a bundle holds and how it was trained, for `mmsr inspect`: routing, classes, weights and the
chain of `mmsr train` runs recorded in its provenance.

A bundle trained with ``--init`` records the bundle it started from, with that bundle's own
provenance, so the chain goes back to the run that trained from scratch; :func:`training_rounds`
lists it oldest first. The summary loads the whole bundle (:func:`mmsr.bundle.load_bundle`), so a
bundle it describes is one that `mmsr upscale` can use, and its weights were checked against the
SHA-256 in its header where it has one.

Example:
    >>> import tempfile
    >>> from mmsr.bundle import Bundle, save_bundle
    >>> path = save_bundle(Bundle.random(["2-2w8"], threshold=0, boundaries=[]), Path(tempfile.mkdtemp()) / "b.safetensors")
    >>> summary = summarize_bundle(path)
    >>> summary["classes"][0]["config"], summary["weights_check"]
    ('2-2w8', 'verified')
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List

from .bundle import load_bundle, read_bundle_metadata

__all__ = ["format_summary", "summarize_bundle", "training_rounds"]

_BN_STATISTICS = (".running_mean", ".running_var")


def training_rounds(provenance: dict) -> List[dict]:
    """The `mmsr train` runs behind a bundle, oldest first: each one's provenance without its ``init``
    (which is the round before). Empty for a bundle with no training record (``Bundle.random``'s)."""
    rounds = []
    # Provenance comes from JSON, a tree: the chain ends.
    while isinstance(provenance, dict) and "command" in provenance:
        rounds.append({key: value for key, value in provenance.items() if key != "init"})
        init = provenance.get("init")
        provenance = init.get("provenance") if isinstance(init, dict) else None
    return rounds[::-1]


def _class_ranges(boundaries: List[float]) -> List[str]:
    edges = [None, *boundaries, None]
    ranges = []
    for low, high in zip(edges, edges[1:]):
        if low is None and high is None:
            ranges.append("every tile")
        elif low is None:
            ranges.append(f"TVAT < {high:.4g}")
        elif high is None:
            ranges.append(f"TVAT >= {low:.4g}")
        else:
            ranges.append(f"{low:.4g} <= TVAT < {high:.4g}")
    return ranges


def summarize_bundle(path: str | os.PathLike) -> dict:
    """Everything `mmsr inspect` shows, as JSON values.

    Raises:
        BundleError: naming the file, for anything :func:`mmsr.bundle.load_bundle` refuses (a missing,
            damaged or malformed file, weights that do not match their SHA-256).
    """
    path = Path(path)
    bundle = load_bundle(path)  # every check `mmsr upscale` makes, the weights' digest included
    header = read_bundle_metadata(path)
    ranges = _class_ranges(list(bundle.boundaries))
    # The last round's per-class record describes the weights in the file; earlier rounds trained them before.
    rounds = training_rounds(bundle.provenance)
    last = rounds[-1]["classes"] if rounds and isinstance(rounds[-1].get("classes"), list) else []
    classes = []
    for k, (config, state_dict) in enumerate(zip(bundle.configs, bundle.state_dicts)):
        entry = {
            "class": k,
            "config": config.name,
            "tvat": ranges[k],
            # Trainable weights only: BatchNorm's running statistics are stored too, but are not parameters.
            "parameters": sum(t.numel() for name, t in state_dict.items() if not name.endswith(_BN_STATISTICS)),
        }
        if k < len(last) and isinstance(last[k], dict):
            entry["last_round"] = {key: last[k].get(key) for key in ("pixel_steps", "gan_steps", "wall_time_s",
                                                                     "device", "val_psnr")}
        classes.append(entry)
    digest = header.get("tensors_sha256")
    return {
        "path": str(path),
        "bytes": path.stat().st_size,
        "format_version": header["format_version"],
        "written_by": f"mmsr {header.get('mmsr_version', '?')}",
        "weights_dtype": header.get("weights_dtype", "?"),
        "tensors_sha256": digest,
        # load_bundle refused the file above if a digest did not match.
        "weights_check": "verified" if digest else "unchecked",
        "scale": bundle.scale,
        "tile_size": bundle.tile_size,
        "overlap": bundle.overlap,
        "threshold": bundle.threshold,
        "boundaries": list(bundle.boundaries),
        "classes": classes,
        "training": rounds,
        "source": None if rounds else bundle.provenance.get("source"),
    }


def _seconds(value) -> str:
    if not isinstance(value, (int, float)):
        return "?"
    return f"{value:.0f} s" if value < 600 else f"{value:.0f} s ({value / 60:.1f} min)"


def _per_class(value) -> str:
    """A per-class setting such as the batch: one number when every class shares it."""
    if isinstance(value, list) and value and all(v == value[0] for v in value):
        return str(value[0])
    return " / ".join(map(str, value)) if isinstance(value, list) else str(value if value is not None else "?")


def _crops(record: dict) -> str:
    """", trained on ..." for a round whose crops were not the usual ones: one TVAT class's (a
    --baseline-class baseline), or each class's and the more textured ones' (--class-crops and-above)."""
    unusual = record.get("baseline_class") is not None or record.get("class_crops") not in (None, "own")
    return f", trained on {record.get('crops')}" if unusual else ""


def _round_lines(number: int, record: dict) -> List[str]:
    classes = record.get("classes") if isinstance(record.get("classes"), list) else []
    steps = " / ".join(
        f"{c.get('config', '?')} {c.get('pixel_steps', '?')}+{c.get('gan_steps', '?')}" for c in classes
        if isinstance(c, dict)
    )
    images = record.get("images")
    split = f" ({record.get('train_images', '?')} trained on, {record.get('val_images', '?')} held out)" \
        if images is not None else ""
    return [
        f"  round {number}: {record.get('mode', '?')}{_crops(record)}, {record.get('created', 'date not recorded')}",
        f"    data: {record.get('data', '?')}, {images if images is not None else '?'} images{split}",
        f"    steps (pixel+GAN per class): {steps or '?'}; crop {record.get('crop', '?')}, batch {_per_class(record.get('batch'))}",
        f"    wall time {_seconds(record.get('wall_time_s'))} on {', '.join(record.get('devices') or ['?'])}; "
        f"torch {record.get('torch_version', '?')}, mmsr {record.get('mmsr_version', '?')}",
        f"    command: {record.get('command', '?')}",
    ]


def format_summary(summary: dict) -> str:
    """The summary as text for a terminal."""
    digest = summary["tensors_sha256"]
    weights = (f"verified against the SHA-256 in its header ({digest[:16]}...)" if summary["weights_check"] == "verified"
               else "not checked: the file has no SHA-256 of its weights (written before mmsr recorded one; "
               "mmsr.bundle.save_bundle(mmsr.bundle.load_bundle(path), new_path) writes a copy with one)")
    lines = [
        f"{summary['path']}: mmsr bundle, format {summary['format_version']}, written by {summary['written_by']}, "
        f"{summary['bytes'] / 1e6:.1f} MB",
        f"  x{summary['scale']}, LR tiles of {summary['tile_size']} px overlapping by {summary['overlap']}, "
        f"TVAT threshold {summary['threshold']:.6g}",
        f"  weights: {summary['weights_dtype']} in the file, loaded as float32; {weights}",
        "",
        "class  model      parameters  tiles routed to it            last round: steps (pixel+GAN), time, PSNR on "
        "the class's held-out crops",
    ]
    for c in summary["classes"]:
        trained = c.get("last_round")
        if trained:
            psnr = trained.get("val_psnr")
            record = (f"{trained.get('pixel_steps', '?')}+{trained.get('gan_steps', '?')}, "
                      f"{_seconds(trained.get('wall_time_s'))} on {trained.get('device', '?')}, "
                      + (f"{psnr:.2f} dB" if isinstance(psnr, (int, float)) else "?"))
        else:
            record = "-"
        lines.append(f"{c['class']:>5}  {c['config']:<9}  {c['parameters']:>10,}  {c['tvat']:<28}  {record}")
    lines.append("")
    rounds = summary["training"]
    if rounds:
        total = sum(r["wall_time_s"] for r in rounds if isinstance(r.get("wall_time_s"), (int, float)))
        lines.append(f"training: {len(rounds)} `mmsr train` round{'s' if len(rounds) != 1 else ''}, oldest first "
                     f"({_seconds(total)} in all)")
        for number, record in enumerate(rounds, 1):
            lines += _round_lines(number, record)
    else:
        source = summary.get("source")
        lines.append("training: no record of `mmsr train` in this bundle"
                     + (f" (its provenance says: {source})" if source else ""))
    return "\n".join(lines)
