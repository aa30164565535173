"""report.md and its charts, from the raw results a run wrote (results.json and `mmsr eval`'s files).

Everything here reads files in OUT and nothing else, so `run_experiments.py --report-only` can
redraw a report (for example one whose run happened on a GPU machine without matplotlib).

Example:
    >>> write_report(Path("runs/paper_cpu"))                                   # doctest: +SKIP
    PosixPath('runs/paper_cpu/report.md')
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Tuple

from mmsr.atomic import write_bytes_atomically
from mmsr.evaluate import BICUBIC, TORCH_BICUBIC
from mmsr.evaluate_curve import crossing
from mmsr.evaluate_seeds import geometric_mean
from mmsr.metrics import PI_UNAVAILABLE_REASON

from bins import BinTotals

__all__ = ["RESULTS_FILE", "write_report"]

RESULTS_FILE = "results.json"
REPORT_FILE = "report.md"
CHARTS_DIR = "charts"

# The paper's Table 3: MMSR trains this many times faster than the SRGAN baseline.
PAPER_SPEEDUP_ONE_DEVICE = 1.6
PAPER_SPEEDUP_SEPARATE_DEVICES = 2.9
# Literature bicubic x4 PSNR-Y (crop 4) that `mmsr eval`'s bicubic reproduces (DESIGN.md).
# The project's reference measurement of bicubic x4 (../shared/MEASUREMENTS.md: Pillow bicubic down and
# up, PSNR on Y, crop 4). Papers quote 28.42 / 26.00 with MATLAB's bicubic, a slightly different kernel.
REFERENCE_BICUBIC = {"set5": 28.43, "set14": 26.09}
# Depths closer than this in PSNR are not told apart: a tiny budget's run-to-run noise is larger.
_TIE_DB = 0.1
# Display names of `mmsr eval`'s rows.
_EVAL_NAMES = {BICUBIC: "bicubic", TORCH_BICUBIC: "torch-bicubic", "baseline": "baseline", "mmsr": "MMSR"}
# Table 1's name for torch's bicubic: every residual model outputs it before training.
_TORCH_BICUBIC_ROW = "torch-bicubic (a = −0.75: an untrained residual model)"
_CHECKS_ONLY = ("**This profile only checks that the pipeline runs**: a few steps on a few images measure nothing, "
                "so this report draws no conclusion about the paper's claims from its numbers.")


# -- formatting ---------------------------------------------------------------------------------


def _checks_only(results: dict) -> bool:
    """The profile only checks the pipeline (results written before the flag existed: the smoke profile)."""
    profile = results["profile"]
    return bool(profile.get("checks_only", profile["name"] == "smoke"))


def _baseline(results: dict) -> str:
    """The baseline's model, e.g. 16-8r (results from before the profile named it used 16-8)."""
    return results["profile"].get("baseline_config", "16-8")


def _num(value: Optional[float], digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return "∞" if math.isinf(value) else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def _bin_labels(edges: Sequence[float]) -> List[str]:
    if not edges:
        return ["all tiles"]
    labels = [f"< {edges[0]:.3g}"]
    labels += [f"{a:.3g} – {b:.3g}" for a, b in zip(edges, edges[1:])]
    return labels + [f"≥ {edges[-1]:.3g}"]


def _pixels(count: int) -> str:
    return f"{count / 1e3:.0f}k px" if count >= 1000 else f"{count} px"


def _photos(results: dict) -> str:
    data = results["training_data"]
    return f"{data['images']} photos ({data['train_images']} to train on, {data['val_images']} held out for validation)"


def _mmsr_steps(profile: dict) -> str:
    """MMSR's pixel steps per class as text: "450" when even, "101 · 304 · 945" (smooth -> complex) when weighted.

    Results written before the split existed hold only ``pixel_steps``: every class had that many.
    """
    steps = profile.get("mmsr_pixel_steps") or [profile["pixel_steps"]] * len(profile["mmsr_configs"])
    return str(steps[0]) if len(set(steps)) == 1 else " · ".join(map(str, steps))


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)"


# -- section 1: quality per TVAT bin ------------------------------------------------------------


def _texture_psnr(texture: dict) -> Dict[str, List[Optional[float]]]:
    return {m: BinTotals.from_dict(texture["totals"][m]).psnr() for m in texture["methods"]}


def _gains(psnr: Dict[str, List[Optional[float]]]) -> Dict[str, List[Optional[float]]]:
    """Each method's PSNR-Y per bin minus bicubic's (Keys a = -0.5, the SR literature's)."""
    reference = psnr[BICUBIC]
    gains = {}
    for method, values in psnr.items():
        if method == BICUBIC:
            continue
        gains[method] = [
            v - r if v is not None and r is not None and math.isfinite(v) and math.isfinite(r) else None
            for v, r in zip(values, reference)
        ]
    return gains


def _depth_answer(psnr: Dict[str, List[Optional[float]]], depths: Sequence[str], labels: Sequence[str],
                  checks_only: bool = False) -> List[str]:
    """What the depth rows say about the paper's claim, in plain sentences (none for a ``checks_only`` profile)."""
    lines, winners = [], []
    for k, label in enumerate(labels):
        ranked = sorted(((psnr[d][k], d) for d in depths if psnr[d][k] is not None), reverse=True)
        if not ranked:
            lines.append(f"- bin {label}: no pixels.")
            continue
        best_value, best = ranked[0]
        margin = best_value - ranked[1][0] if len(ranked) > 1 else math.inf
        tied = [d for v, d in ranked if best_value - v < _TIE_DB]
        winners.append(set(tied))
        if len(tied) > 1:
            lines.append(f"- bin {label}: {' · '.join(tied)} within {_TIE_DB} dB of each other (best {best}, "
                         f"{_num(best_value)} dB): no clear winner.")
        else:
            lines.append(f"- bin {label}: best depth **{best}** ({_num(best_value)} dB, {_num(margin)} dB ahead).")
    shallow, deep = depths[0], depths[-1]
    spread = [
        psnr[deep][k] - psnr[shallow][k]
        for k in range(len(labels))
        if psnr[deep][k] is not None and psnr[shallow][k] is not None
        and math.isfinite(psnr[deep][k]) and math.isfinite(psnr[shallow][k])
    ]
    if spread:
        lines.append(f"- {deep} minus {shallow}, smooth → complex: "
                     + ", ".join(f"{d:+.2f} dB" for d in spread) + ".")
    common = set.intersection(*winners) if winners else set()
    if checks_only:
        verdict = _CHECKS_ONLY
    elif len(winners) < 2:
        verdict = "Too few non-empty bins to say."
    elif common:
        verdict = (f"**In this run the best depth does not depend on texture**: {' · '.join(sorted(common))} is "
                   "best (or within the tie margin) in every bin, so the paper's claim is not reproduced here.")
    else:
        verdict = ("**In this run the best depth differs between texture bins**, as the paper claims; with budgets "
                   "this small, check that the differences exceed the tie margin before trusting them.")
    return lines + ["", verdict]


def _texture_section(results: dict, charts: Dict[str, str]) -> List[str]:
    texture = results["texture"]
    profile = results["profile"]
    labels = _bin_labels(texture["edges"])
    psnr = _texture_psnr(texture)
    gains = _gains(psnr)
    names = {TORCH_BICUBIC: _TORCH_BICUBIC_ROW, **texture.get("display_names", {})}
    depths = [d for d in profile["depth_configs"] if d in psnr]
    tiles = BinTotals.from_dict(texture["totals"][BICUBIC]).tiles
    pixels = BinTotals.from_dict(texture["totals"][BICUBIC]).pixels
    header = ["method"] + [f"{label}<br>{t} tiles, {_pixels(p)}" for label, t, p in zip(labels, tiles, pixels)]
    lines = [
        "## 1. Quality per texture bin (the paper's Table 1)",
        "",
        f"Each depth is a one-class model trained on all crops (`--classes 1 --configs X-Y`) with the same budget "
        f"({profile['single_pixel_steps']} pixel + {profile['single_gan_steps']} GAN steps of {profile['batch']} "
        f"crops); the {_baseline(results)} row is the baseline run, which is that same training. MMSR is the 3-class bundle, "
        "routed. Scored on " + " + ".join(texture["sets"]) + ".",
        "",
        "**How the bins are measured.** " + _texture_method(texture, results),
        "",
        "PSNR-Y (dB) per TVAT bin, all images pooled:",
        "",
    ]
    rows = [[names.get(m, m)] + [_num(v) for v in psnr[m]] for m in texture["methods"]]
    lines += _table(header, rows)
    if TORCH_BICUBIC in psnr:
        gain_note = ("Gain over bicubic (Keys a = −0.5, the SR literature's bicubic), dB. Every model here is residual "
                     "and starts at torch's bicubic (a = −0.75, the torch-bicubic row), which is already above "
                     "bicubic: a model's gain from training is its gain minus torch-bicubic's in the same bin.")
    else:  # results from before the harness measured torch's bicubic
        gain_note = ("Gain over bicubic (Keys a = −0.5, the SR literature's bicubic), dB. The residual models start "
                     "at torch's bicubic (a = −0.75), not measured in this run, which reads 0.13–0.2 dB above "
                     "bicubic on Set5 / Set14 ×4: that much of a gain is no training's.")
    lines += ["", gain_note, ""]
    rows = [[names.get(m, m)] + [_num(v) for v in gains[m]] for m in gains]
    lines += _table(["method"] + labels, rows)
    if "texture_gain" in charts:
        lines += ["", f"![PSNR-Y gain over bicubic per TVAT bin]({charts['texture_gain']})"]
    lines += ["", "**Does the best depth depend on texture?**", ""]
    lines += _depth_answer(psnr, depths, labels, _checks_only(results))
    if profile.get("gan_steps", 0) > 0 and not _checks_only(results):
        lines += ["", "These are the final bundles, after the GAN phase; see \"GAN phase\" under the differences from "
                  "the paper for what it did to each depth's PSNR before reading the ranking as depth's."]
    return lines


def _texture_method(texture: dict, results: dict) -> str:
    source = texture.get("edges_source", "")
    return (
        f"Every HR image is cut to a multiple of {texture['scale']} and made LR with `mmsr eval`'s down-sampler "
        f"(`mmsr.evaluate.make_lr`). The uint8 LR is cut into the tiles mmsr's Upscaler uses "
        f"(`mmsr.tile`, tile {texture['tile_size']}, overlap {texture['overlap']}), each tile is scored by "
        f"`mmsr.tvat` (threshold {texture['threshold']:.3g}) and binned by `mmsr.classify` with the edges "
        f"{[round(e, 4) for e in texture['edges']]} ({source}). Tiles overlap, so each LR pixel belongs to the one "
        "tile whose centre is nearest along each axis (overlaps split down the middle, as `mmsr classify --map` "
        f"draws them), and the {texture['scale']}×{texture['scale']} SR pixels above it take that tile's bin. Every "
        "method's whole SR image (bicubic, or the bundle's Upscaler output, stitched as `mmsr upscale` makes it) "
        f"and the mod-cropped HR are compared on BT.601 luma after dropping {texture['crop_border']} px along "
        "every side, as `mmsr eval` does; per bin, squared errors and pixel counts are summed over all images and "
        "PSNR = 10·log10(255² / (error sum / pixels)). Over all bins this is exactly `mmsr eval`'s PSNR-Y of the "
        "images taken together. Routing is the same for every method, so each bin holds the same pixels in every row."
    )


# -- section 2: training time --------------------------------------------------------------------


def _speedup(baseline: Optional[float], value: Optional[float]) -> Optional[float]:
    return baseline / value if baseline and value else None


@dataclass(frozen=True)
class _TimeRow:
    label: str  # the table's
    short: str  # the chart's
    seconds: Optional[float]
    reference: Optional[float]  # the baseline's time of the same kind
    paper_speedup: float
    computed: bool


def _time_rows(table3: dict) -> List[_TimeRow]:
    """MMSR's rows of Table 3, each with the baseline time it is compared with."""
    base, mmsr_run = table3["runs"]["baseline"], table3["runs"]["mmsr"]
    concurrent = table3["mmsr_concurrent"]
    separate_measured = len(set(mmsr_run["devices"])) == len(mmsr_run["configs"]) and not concurrent
    one_device = "one device, classes concurrent" if concurrent else "one device, classes one after another"
    rows = [_TimeRow(f"MMSR, {one_device}: wall time (measured)", "MMSR one device: wall",
                     mmsr_run["wall_time_s"], base["wall_time_s"], PAPER_SPEEDUP_ONE_DEVICE, False)]
    if not concurrent:
        rows.append(_TimeRow("MMSR, one device: class training times summed (measured)", "MMSR one device: classes",
                             mmsr_run["sum_s"], base["sum_s"], PAPER_SPEEDUP_ONE_DEVICE, False))
    if separate_measured:
        rows.append(_TimeRow("MMSR, classes on separate devices: wall time (measured)", "MMSR separate devices: wall",
                             mmsr_run["wall_time_s"], base["wall_time_s"], PAPER_SPEEDUP_SEPARATE_DEVICES, False))
    else:
        rows.append(_TimeRow("MMSR, classes on separate devices: longest class (computed)",
                             "MMSR separate devices (computed)", mmsr_run["max_s"], base["sum_s"],
                             PAPER_SPEEDUP_SEPARATE_DEVICES, True))
    return rows


def _time_section(results: dict, out: Path, charts: Dict[str, str]) -> List[str]:
    table3 = results["table3"]
    base, mmsr_run = table3["runs"]["baseline"], table3["runs"]["mmsr"]
    rows = []
    baseline = _baseline(results)
    rows.append([f"{baseline} baseline (`--baseline`), wall time (measured)", _num(base["wall_time_s"], 1), "1.00", "1.00×",
                 "1×"])
    rows.append([f"{baseline} baseline, class training time (measured)", _num(base["sum_s"], 1), "1.00", "1.00×", "1×"])
    for row in _time_rows(table3):
        ratio = row.seconds / row.reference if row.seconds and row.reference else None
        rows.append([row.label, _num(row.seconds, 1), _num(ratio), _num(_speedup(row.reference, row.seconds)) + "×",
                     f"{row.paper_speedup}×"])
    lines = [
        "## 2. Training time (the paper's Table 3)",
        "",
        f"Same crops for both: MMSR trains {len(mmsr_run['configs'])} classes ({_mmsr_steps(results['profile'])} pixel "
        f"steps per class, smooth → complex, and {results['profile']['gan_steps']} GAN steps each), the baseline one {baseline} × "
        f"{results['profile']['single_pixel_steps']} + {results['profile']['single_gan_steps']} steps, batch "
        f"{results['profile']['batch']}, crop {results['profile']['crop']}, on {', '.join(sorted(set(mmsr_run['devices'])))}. "
        "Wall times include start-up (reading the training photos; MMSR also calibrates its boundaries); class times are "
        "training alone, so each ratio divides by the baseline's time of the same kind.",
        "",
    ]
    lines += _table(["setting", "time (s)", "× baseline", "speed-up", "paper's speed-up"], rows)
    notes = []
    if table3["mmsr_concurrent"]:
        notes.append("The classes trained concurrently on one device, so each class's time includes waiting for the "
                     "others: the computed separate-device time is an upper bound.")
        if results["profile"].get("gan_steps"):
            notes.append("The longest class's pixel phase also shared the device with the shorter classes' GAN phases "
                         "wherever they ran before it ended, so the equal-quality reading below charges MMSR for work "
                         "that the baseline's curve, which ends before its own GAN phase, does not hold.")
    if results["profile"].get("timed_side_by_side"):
        notes.append("MMSR and the baseline trained side by side, one process each on the same machine, so both ran "
                     "beside the same neighbour; the one that finished first left the other alone for its last stretch.")
    else:
        notes.append("MMSR and the baseline trained one after another, each alone on the machine: a change in the "
                     "machine's load between the two windows goes straight into the ratios.")
    if any(row.computed for row in _time_rows(table3)):
        notes.append("Only one device was used, so \"separate devices\" is **computed** from the per-class timings "
                     "(the longest class), not measured; it ignores start-up and data loading.")
    if mmsr_run["resumed"] or base["resumed"]:
        notes.append("A run was resumed: its wall time covers the last session only.")
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    if "training_time" in charts:
        lines += ["", f"![training time]({charts['training_time']})"]
    lines += _equal_quality_section(table3.get("equal_quality"), charts)
    lines += _per_class_section(table3.get("per_class"), table3["mmsr_concurrent"])
    report_file = out / table3["mmsr_report"]
    if report_file.is_file():
        lines += ["", f"`mmsr report` on MMSR and the baseline ([{table3['mmsr_report']}]({table3['mmsr_report']})):", ""]
        lines += ["#" * 2 + line if line.startswith("#") else line
                  for line in report_file.read_text(encoding="utf-8").strip().splitlines()]
    return lines


def _equal_quality_section(eq: Optional[dict], charts: Dict[str, str]) -> List[str]:
    """Table 3 at equal quality: the training time each run needs to reach the best PSNR-Y both reach."""
    lines = ["", "### At equal quality", ""]
    if eq is None:
        return lines + ["Not measured: these runs predate the harness's snapshots (`mmsr train --snapshots`)."]
    if "error" in eq:
        return lines + [f"Not measured: {eq['error']}"]
    e, curves = eq["equal"], eq["curves"]
    count = len(curves["mmsr"]) - 1
    lines += [
        f"The times above compare runs that end at different quality. Here both runs kept their generators at "
        f"{count} point{'s' if count != 1 else ''} of the pixel phase (`mmsr train --snapshots {count}`), each snapshot was measured on "
        f"{eq['set']} (mean PSNR-Y, `mmsr eval`'s protocol), and each run's training time to first reach the "
        f"highest PSNR-Y both reach is read off its curve (linear between snapshots). Times are class training "
        f"times (no start-up) up to the snapshot; GAN steps are not part of the curve.",
        "",
    ]
    one = e["one_device_speedup"]
    sep = e["separate_devices_speedup"]
    at_start = " and ".join(e["at_start"]) if e["at_start"] else ""
    rows = [
        ["equal quality: PSNR-Y on " + eq["set"], f"{_num(e['target_psnr'])} dB (the best of {e['limited_by']})", "", ""],
        ["the baseline reaches it", f"{_num(e['baseline_s'], 1)} s", "1.00×", "1×"],
        ["MMSR, one device", f"{_num(e['one_device_s'], 1)} s",
         f"{_num(one)}×" if one is not None else f"— ({at_start} at the start)", f"{PAPER_SPEEDUP_ONE_DEVICE}×"],
        ["MMSR, classes on separate devices (computed)",
         f"{_num(e['separate_devices_s'], 1)} s" if e["separate_devices_s"] is not None else "—",
         f"{_num(sep)}×" if sep is not None else
         "— (classes trained concurrently: their times shared the device)" if e["separate_devices_s"] is None else
         f"— ({at_start} at the start)", f"{PAPER_SPEEDUP_SEPARATE_DEVICES}×"],
    ]
    lines += _table(["", "training time", "speed-up", "paper's speed-up"], rows)
    finals = {name: points[-1]["psnr_y"] for name, points in curves.items()}
    lines += ["", f"PSNR-Y on {eq['set']} at the end of the pixel phase (the last snapshot; the GAN phase follows, "
              f"see section 3): MMSR {_num(finals['mmsr'])} dB, baseline {_num(finals['baseline'])} dB "
              f"(best on the curve: MMSR {_num(max(p['psnr_y'] for p in curves['mmsr']))}, baseline "
              f"{_num(max(p['psnr_y'] for p in curves['baseline']))}). Every snapshot: [{eq['report']}]({eq['report']})."]
    lines += _sensitivity(e, curves)
    lines += _steps_text(eq.get("steps"), "MMSR")
    if "quality_time" in charts:
        lines += ["", f"![quality against training time]({charts['quality_time']})"]
    if "seeds" in eq:
        lines += _seeds_section(eq)
    return lines


def _per_class_section(pc: Optional[dict], concurrent: bool) -> List[str]:
    """Each MMSR class's steps' worth on its own pixels, and the complex class's model alone (per_class.py)."""
    if pc is None:  # results written before the harness had this stage
        return []
    lines = ["", "### Per TVAT class: where the steps' worth comes from", ""]
    if "error" in pc:
        return lines + [f"Not measured: {pc['error']}"]
    lines += [
        f"Every snapshot of both runs was scored per TVAT class of MMSR's tiles on {pc['set']} (pooled PSNR-Y of the "
        f"class's pixels; [{pc['report']}]({pc['report']})). A class's steps' worth is the baseline's steps to reach, "
        "on that class's pixels, the PSNR-Y the class's model has there, over the class's own steps; the baseline's "
        "steps are over every kind of crop, so above 1 a step on the class's crops did more for its pixels (—: the "
        "baseline never reaches the class's PSNR-Y there; 0.00: the class's model is no better than the start).",
        "",
    ]
    rows = []
    for k, name in enumerate(pc["classes"]):
        mmsr, base = pc["final"]["mmsr"][k], pc["final"]["baseline"][k]
        gap = f"{mmsr - base:+.2f}" if mmsr is not None and base is not None else "—"
        worth = " · ".join(_num(w) if w is not None else "—" for w in pc["worth"][k]) or "—"
        rows.append([name, _num(mmsr), _num(base), gap, worth])
    lines += _table(["class", "MMSR, end (dB)", "baseline, end (dB)", "MMSR − baseline", "worth at snapshots 1, 2, …"],
                    rows)
    a = pc["alone"]
    lead = (f"Class {a['class']}'s model ({a['config']}) alone on every tile, without routing, as one model for the "
            f"whole image: at {_num(a['target_psnr'])} dB, the highest mean PSNR-Y it and the baseline both reach")
    if a["speedup"] is None:
        lines += ["", lead + ", one of the curves starts there: no training time to compare."]
    else:
        lines += ["", lead + f", it needs {a['alone_steps']:.0f} steps ({_num(a['alone_s'], 1)} s) and the baseline "
                  f"{a['baseline_steps']:.0f} ({_num(a['baseline_s'], 1)} s): **{_num(a['speedup'])}×** (steps' worth "
                  f"{_num(a['worth'])}, step cost {_num(a['step_cost'])}). That is not MMSR: it measures one TVAT "
                  "class's crops as training material for a model meant for every tile."]
    if concurrent:
        lines += ["", "The classes trained concurrently on one device, so the class's times include waiting for the "
                  "others: its speed-up alone is understated."]
    return lines


# How far below the equal-quality target the speed-up is read again: the curves flatten at their end,
# so a hundredth of a dB can move the time a run "first reaches" it by a whole snapshot.
_SENSITIVITY_DB = 0.01


def _first_reach(points: Sequence[dict], target: float, cost: str) -> Optional[float]:
    """``cost`` where the results.json curve ``points`` first reach ``target`` dB, by mmsr's own crossing rule."""
    where = crossing([SimpleNamespace(psnr_y=p["psnr_y"], cost=p[cost]) for p in points], target)
    return None if where is None else where.of(lambda p: p.cost)


def _sensitivity(e: dict, curves: dict) -> List[str]:
    """The one-device speed-up read at a target ``_SENSITIVITY_DB`` lower, when that moves it by 0.1× or more."""
    target = e["target_psnr"] - _SENSITIVITY_DB
    base = _first_reach(curves["baseline"], target, "one_device_s")
    mmsr = _first_reach(curves["mmsr"], target, "one_device_s")
    concurrent = any(p.get("separate_devices_s") is None for p in curves["mmsr"])
    sep = None if concurrent else _first_reach(curves["mmsr"], target, "separate_devices_s")
    if not (base and mmsr) or e.get("one_device_speedup") is None:
        return []
    lower = base / mmsr
    if abs(lower - e["one_device_speedup"]) < 0.1:
        return []
    separate = f" and {_num(sep, 1)} s computed for separate devices ({_num(base / sep)}×)" if sep else ""
    return ["", f"**These ratios hang on a hundredth of a dB**: at {_num(target, 3)} dB, {_SENSITIVITY_DB} dB lower, the "
            f"baseline needs {_num(base, 1)} s and MMSR {_num(mmsr, 1)} s on one device ({_num(lower)}×){separate}. "
            "Near their ends both curves are flat within the snapshots' noise, so one run says little; `--seeds` "
            "measures the spread."]


def _seeds_section(eq: dict) -> List[str]:
    """Table 3 at equal quality seed by seed, and for the seed-averaged curves."""
    seeds = eq["seeds"]
    count = len(seeds["seeds"])
    lines = ["", f"#### Over {count} seeds", "",
             f"MMSR and the baseline were trained with seeds {', '.join(map(str, seeds['seeds']))} (`mmsr train "
             "--seed`: the held-out photos, initial weights, calibration and training crops); each MMSR run is "
             "compared with the baseline of its seed, and the mean curves average each snapshot's times and PSNR-Y "
             "over the seeds. Above and in sections 1 and 3: the first seed's runs.", ""]
    rows = []
    for s in seeds["per_seed"]:
        rows.append([f"seed {s['seed']}", f"{_num(s['target_psnr'])} dB", _speedup_text(s["one_device_speedup"]),
                     _speedup_text(s["separate_devices_speedup"]), f"{_num(s['final_mmsr'])} / {_num(s['final_baseline'])}"])
    one = [s["one_device_speedup"] for s in seeds["per_seed"] if s["one_device_speedup"]]
    sep = [s["separate_devices_speedup"] for s in seeds["per_seed"] if s["separate_devices_speedup"]]
    finals = [(s["final_mmsr"], s["final_baseline"]) for s in seeds["per_seed"]]
    rows.append(["geometric mean of the seeds", "", _speedup_text(geometric_mean(one)),
                 _speedup_text(geometric_mean(sep)),
                 f"{_num(sum(f[0] for f in finals) / count)} / {_num(sum(f[1] for f in finals) / count)} (mean)"])
    m = seeds["mean_equal"]
    rows.append(["mean curves", f"{_num(m['target_psnr'])} dB", _speedup_text(m["one_device_speedup"]),
                 _speedup_text(m["separate_devices_speedup"]), ""])
    rows.append(["the paper", "", f"{PAPER_SPEEDUP_ONE_DEVICE}×", f"{PAPER_SPEEDUP_SEPARATE_DEVICES}×", ""])
    lines += _table(["", "equal quality (PSNR-Y)", "speed-up, one device", "speed-up, separate devices (computed)",
                     "final PSNR-Y: MMSR / baseline"], rows)
    if one:
        lines += ["", f"Per seed the one-device speed-up runs from {_num(min(one))}× to {_num(max(one))}×."]
    lines += _steps_text(seeds.get("mean_steps"), "On the mean curves, MMSR")
    return lines


def _steps_text(steps: Optional[dict], who: str) -> List[str]:
    """The speed-up split into its factors (mmsr.evaluate_steps), as a paragraph; nothing without an account."""
    if not steps:
        return []
    separate = ("" if steps["concurrent"] else
                f" On separate devices the speed-up is their product, {_num(steps['worth'] * steps['step_cost'])}×.")
    return ["", (
        f"Where the speed-up comes from: {who}'s longest class (class {steps['klass']}, {steps['config']}) reached the "
        f"equal quality after {steps['class_steps']:.0f} steps, the baseline after {steps['baseline_steps']:.0f}: each "
        f"of the class's steps was worth **{_num(steps['worth'])}** of the baseline's. Its steps cost "
        f"{_num(steps['step_cost'])}× the baseline's (the baseline's seconds per step over the class's"
        f"{', measured while the classes shared the device' if steps['concurrent'] else ''}), and it held "
        f"{_num(steps['share'])} of MMSR's one-device time.{separate} A class that trains the baseline's model on a "
        f"third of the crops needs a worth near {PAPER_SPEEDUP_SEPARATE_DEVICES} for the paper's "
        f"{PAPER_SPEEDUP_SEPARATE_DEVICES}× on three devices."
    )]


def _speedup_text(value: Optional[float]) -> str:
    return "—" if value is None else f"{_num(value)}×"


# -- section 3: per-image quality ----------------------------------------------------------------


def _eval_results(results: dict, out: Path) -> Dict[str, dict]:
    return {name: json.loads((out / path).read_text(encoding="utf-8")) for name, path in results["quality"].items()}


def _quality_series(evaluation: dict) -> Tuple[List[str], Dict[str, Dict[str, List[Optional[float]]]]]:
    methods = [m["name"] for m in evaluation["methods"]]
    images = [image["name"] for image in evaluation["images"]] + ["mean"]
    scores: Dict[str, Dict[str, List[Optional[float]]]] = {}
    for metric, key, rows in (("PSNR-Y (dB) ↑", "psnr_y_db", methods), ("SSIM-Y ↑", "ssim_y", methods),
                              ("NIQE ↓", "niqe", methods + ["HR"])):
        scores[metric] = {
            _EVAL_NAMES.get(m, m): [image["scores"].get(m, {}).get(key) for image in evaluation["images"]]
            + [evaluation["mean"].get(m, {}).get(key)]
            for m in rows
        }
    return images, scores


def _quality_section(results: dict, out: Path, charts: Dict[str, str]) -> List[str]:
    lines = [
        "## 3. Per-image quality on Set5 and Set14 (the paper's Fig. 10)",
        "",
        "From `mmsr eval` (files below): PSNR-Y and SSIM-Y on BT.601 luma with the scale cropped from every side, "
        f"higher is better; NIQE, lower is better (HR: the ground truth's own NIQE). {PI_UNAVAILABLE_REASON}",
    ]
    for set_name, evaluation in _eval_results(results, out).items():
        methods = [m["name"] for m in evaluation["methods"]]
        names = [_EVAL_NAMES.get(m, m) for m in methods]
        header = ["image"] + [f"PSNR {n}" for n in names] + [f"SSIM {n}" for n in names] + [f"NIQE {n}" for n in names] \
            + ["NIQE HR"]
        rows = []
        for image in evaluation["images"] + [{"name": "**mean**", "scores": evaluation["mean"]}]:
            s = image["scores"]
            rows.append([image["name"]] + [_num(s[m]["psnr_y_db"]) for m in methods]
                        + [_num(s[m]["ssim_y"], 4) for m in methods] + [_num(s[m]["niqe"], 3) for m in methods]
                        + [_num(s.get("HR", {}).get("niqe"), 3)])
        folder = Path(results["quality"][set_name]).parent.as_posix()
        lines += ["", f"### {set_name} ([results.csv]({folder}/results.csv), [report.md]({folder}/report.md), "
                  f"comparison crops in [{folder}/compare]({folder}/compare))", ""]
        lines += _table(header, rows)
        if f"quality_{set_name}" in charts:
            lines += ["", f"![{set_name} per-image quality]({charts[f'quality_{set_name}']})"]
    return lines


# -- framing -------------------------------------------------------------------------------------


def _header(results: dict) -> List[str]:
    machine, profile = results["machine"], results["profile"]
    gpus = ", ".join(machine["gpus"]) or "none used"
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in results["stages_s"].items())
    reused = [t["name"] for t in results["training"] if t["reused"]]
    rows = [
        ["command", f"`{results['command']}`"],
        ["date (UTC)", f"{results['started_utc']} → {results['finished_utc']}"],
        ["total wall time", _minutes(results["wall_time_s"])
         + (f" (reused, not retrained: {', '.join(reused)})" if reused else "")],
        ["stages", stages],
        ["machine", f"{machine['cpu_model']}, {machine['cpu_threads']} CPU threads (torch uses "
                    f"{machine['torch_threads']}); GPU: {gpus}"],
        ["load average (1/5/15 min)", f"start {results['load_average_start']}, end {results['load_average_end']}"],
        ["software", f"torch {machine['torch']} (CUDA {machine['torch_cuda']}), mmsr {machine['mmsr']} "
                     f"(CUDA kernels {'in' if machine['mmsr_build'].get('cuda') else 'not built'}), Python "
                     f"{machine['python']}, {machine['platform']}"],
        ["data", f"training `{results['data']}`; validation " + ", ".join(f"`{p}`" for p in results["val_sets"].values())],
    ]
    settings = [
        ["profile", f"`{profile['name']}`: {profile['purpose']}"],
        ["MMSR classes", f"{' · '.join(profile['mmsr_configs'])}, TVAT boundaries calibrated into equal-count classes "
                         f"on {profile['calib_samples']} training crops"],
        ["baseline", f"one {_baseline(results)} on all crops (`mmsr train --baseline`)"],
        ["Table 1 depths", " · ".join(profile["depth_configs"])],
        ["per MMSR class", f"{_mmsr_steps(profile)} pixel steps (smooth → complex) + {profile['gan_steps']} GAN steps"],
        ["baseline and each depth", f"{profile['single_pixel_steps']} pixel + {profile['single_gan_steps']} GAN steps"],
        ["batch, crop", f"{profile['batch']} crops of {profile['crop']}×{profile['crop']} HR (×4)"],
        ["optimiser", f"lr {profile['lr']} ({profile['lr_schedule']}), L1 pixel loss, early stopping off, "
                      f"validation every {profile['val_every']} steps on {profile['val_crops']} held-out crops"],
        ["devices", f"train {profile['devices']} (amp {profile['amp']}, channels_last {profile['channels_last']}, "
                    f"concurrent classes {profile['concurrent']}); evaluate {profile['eval_device']}"],
        ["images evaluated", "all" if profile["eval_limit"] is None else f"the first {profile['eval_limit']} of each set"],
    ]
    return [f"# MMSR paper experiments, small: profile `{profile['name']}`", ""] + _table(["run", ""], rows) \
        + ["", "## Settings", ""] + _table(["setting", "value"], settings)


def _gan_effects(out: Path) -> List[Tuple[str, int, str, float, float]]:
    """(run, class, config, best pixel-phase validation PSNR, final validation PSNR) for every class of every
    run under ``out/runs`` whose log has both: what the GAN phase did to it, on its held-out crops."""
    found = []
    for log in sorted((out / "runs").glob("*.run/logs/class*.jsonl")):
        best, final, config = None, None, "?"
        for line in log.read_text().splitlines():
            record = json.loads(line)
            config = record.get("config", config)
            if record.get("phase") == "pixel" and record.get("event") == "val":
                best = max(best or -math.inf, record["val_psnr"])
            elif record.get("event") == "finish" and record.get("val_psnr") is not None:
                final = record["val_psnr"]
        if best is not None and final is not None:
            found.append((log.parent.parent.name[: -len(".run")], int(log.stem[len("class"):]), config, best, final))
    return found


def _gan_effect_text(out: Path) -> str:
    effects = _gan_effects(out)
    if not effects:
        return "What the adversarial steps did to the models' PSNR was not logged in these runs."
    changes = "; ".join(
        f"{run}{'' if run != 'mmsr' else f' class {k}'} ({config}) " + f"{final - best:+.2f} dB".replace("-", "−")
        for run, k, config, best, final in effects
    )
    return (
        "They cost PSNR: on each run's held-out validation crops (RGB), from the best pixel-phase generator to the "
        f"final one: {changes}. Table 1 and section 3 measure the final bundles, so what they say about depth "
        "includes what the adversarial steps did; section 2's curves (pixel phase only) do not."
    )


def _differences(results: dict, out: Path) -> List[str]:
    profile = results["profile"]
    crops = profile["pixel_steps"] * profile["batch"]  # the mean MMSR class's
    gan = profile["gan_steps"] > 0
    perceptual = results.get("perceptual_loss", False)
    items = [
        f"**Tiny data.** Training uses {_photos(results)} from `{results['data']}`; the paper and SRGAN train on far "
        "larger sets, so every model here sees little variety.",
        f"**Tiny budgets.** {profile['pixel_steps']} pixel steps per MMSR class on average ({crops:,} crops of "
        f"{profile['crop']}×{profile['crop']}); SRGAN-style training runs 10⁵–10⁶ steps of 16 crops of 96×96. "
        "**None of these models is anywhere near convergence**: the numbers compare undertrained networks. Deeper "
        "models (16-8) have the most capacity left unused at such budgets, so depth comparisons here say little "
        "about which depth suits which texture once trained.",
        ("**GAN phase without perceptual loss.** " if gan and not perceptual else "**GAN phase.** " if gan else
         "**No GAN phase.** ")
        + (f"{profile['gan_steps']} adversarial steps per class follow the pixel phase; no VGG19 weights can be had "
           "offline, so the generator loss is pixel + adversarial only (SRGAN's VGG loss is missing). "
           + _gan_effect_text(out) if gan and not perceptual else
           f"{profile['gan_steps']} adversarial steps per class with the VGG19 perceptual loss." if gan else
           "The profile skips the adversarial phase: the models are SRResNets trained on the pixel loss, and the "
           "discriminator depth Y plays no part."),
        f"**No PI.** {PI_UNAVAILABLE_REASON} NIQE is one of PI's two terms, so it says less than the paper's PI.",
        "**TVAT units and classes.** The paper's class edges (TVAT 2 and 4) are in units that do not carry over to "
        "mmsr's [0, 1] pixels; MMSR's boundaries are calibrated on training crops into three equal-count classes, "
        f"on LR crops of {profile['crop'] // 4}×{profile['crop'] // 4} (validation tiles are 32×32, so the classes' "
        "shares on Set5/Set14 differ from a third each).",
    ]
    if all(config.endswith("r") for config in [*profile["mmsr_configs"], _baseline(results)]):
        items.append("**Residual generators.** Every model adds the bicubic upsample of its input to its output and "
                     "starts as that bicubic (configs ending in `r`); the paper's SRResNet has no such skip. The skip "
                     "is torch's bicubic (Keys a = −0.75), sharper than the literature's bicubic row (a = −0.5) and "
                     "0.13–0.2 dB PSNR-Y above it on Set5 / Set14 ×4 before any training: the tables show both, and "
                     "only a model's lead over torch-bicubic is training's. At budgets "
                     "this small the plain SRResNet stays below bicubic (this profile's earlier plain-config report, in git history), "
                     "which makes every comparison one between models that do not yet super-resolve. Depths, "
                     "discriminators and losses are the paper's.")
    if not results["machine"]["gpus"]:
        items.append("**CPU.** Training ran on a shared 2-core CPU, not GPUs: absolute times are minutes, not hours, "
                     "and the load average above says how much other work shared the cores. Compare ratios within "
                     "this run only.")
    items.append("**Separate devices are computed** unless MMSR's classes really ran on devices of their own (see "
                 "section 2).")
    if profile.get("lr_schedule") == "cosine":
        items.append("**Schedules of different lengths.** Each run's learning rate falls along a cosine over its own "
                     "budget, and MMSR's deepest class has fewer steps than the baseline, so MMSR anneals first. The "
                     "equal-quality reading compares MMSR's annealed end with the baseline's curve mid-course, "
                     "where at these budgets a longer schedule is ahead of a shorter one's end (in "
                     "`benchmarks/paper/equal_steps_cpu/` a 1400-step baseline ended 0.06 dB below where a "
                     "3000-step one stood after 1040 steps): this reading favours the baseline.")
    elif profile.get("lr_schedule") == "constant":
        items.append("**One learning rate throughout the pixel phase.** SRGAN lowers its rate once, late; here it "
                     "stays constant so that no run's curve depends on its own budget (with a cosine over each "
                     "run's steps, MMSR's deepest class, which has fewer steps than the baseline, anneals first, and "
                     "the equal-quality reading favoured the baseline: `benchmarks/paper/equal_steps_cpu/`). The "
                     "final models are a little less converged than a decayed rate would leave them.")
    seeds = results["profile"].get("seeds", [0])
    if len(seeds) > 1:
        items.append(f"**{len(seeds)} seeds for MMSR and the baseline, one run for the rest.** Section 2 compares MMSR "
                     "with the baseline seed by seed and over the seeds; Table 1 and section 3 use the first seed's "
                     "runs only, one draw each.")
    else:
        items.append("**One run each.** Every figure here comes from one training run per model and one seed. In "
                     "`benchmarks/README.md` the real-size CPU comparison repeated with other seeds moved the runs' "
                     "final Set14 PSNR-Y by ~0.15 dB, and MMSR's speed-up at equal quality ran from 0.60× to 1.42× over "
                     "five seeds (0.80× for the seed-averaged curves): read this report's ratios as one draw, not as "
                     "a measured effect (`--seeds 0,1,2` trains MMSR and the baseline once per seed).")
    items += _bicubic_check(results, out)
    items += _trained_vs_bicubic(results, out)
    return ["## How these numbers differ from the paper, and why", ""] + [f"- {item}" for item in items]


def _bicubic_check(results: dict, out: Path) -> List[str]:
    if results["profile"]["eval_limit"] is not None:
        return ["**Subset.** Only the first images of each set were evaluated, so set means are not comparable "
                "with the literature's."]
    lines = []
    for name, evaluation in _eval_results(results, out).items():
        reference = REFERENCE_BICUBIC.get(name.lower())
        measured = evaluation["mean"][BICUBIC]["psnr_y_db"]
        if reference is not None and measured is not None:
            lines.append(f"**Bicubic on {name}**: {measured:.2f} dB here vs {reference} dB in the project's reference "
                         "measurement (MEASUREMENTS.md, Pillow bicubic; papers quote 28.42 / 26.00 for Set5 / Set14 "
                         "with MATLAB's bicubic), so the evaluation reproduces the expected protocol.")
    return lines


def _trained_vs_bicubic(results: dict, out: Path) -> List[str]:
    """Each trained model's mean PSNR-Y against both bicubics, per validation set.

    bicubic is Keys a = -0.5 (the literature's row); torch-bicubic, a = -0.75, is what every residual
    model outputs before training, so only a lead over it is training's. Evaluations written before
    `mmsr eval` measured torch-bicubic compare with bicubic alone and say so.
    """
    lines = []
    references = (BICUBIC, TORCH_BICUBIC, "HR")
    for name, evaluation in _eval_results(results, out).items():
        mean = evaluation["mean"]
        models = [m for m in mean if m not in references and mean[m]["psnr_y_db"] is not None]
        if not models or mean[BICUBIC]["psnr_y_db"] is None:
            continue
        bicubic = mean[BICUBIC]["psnr_y_db"]
        torch_bicubic = mean.get(TORCH_BICUBIC, {}).get("psnr_y_db")
        if torch_bicubic is not None:
            parts = [f"{_EVAL_NAMES.get(m, m)} {mean[m]['psnr_y_db'] - bicubic:+.2f} / "
                     f"{mean[m]['psnr_y_db'] - torch_bicubic:+.2f} dB" for m in models]
            text = (f"**Trained models vs the two bicubics on {name}** (mean PSNR-Y, over bicubic / over "
                    f"torch-bicubic): {', '.join(parts)}. bicubic is the literature's (Keys a = −0.5); torch-bicubic "
                    f"(a = −0.75, {torch_bicubic - bicubic:+.2f} dB over bicubic here) is what every residual model "
                    "outputs before training, so only the second figure is training's.")
        else:
            parts = [f"{_EVAL_NAMES.get(m, m)} {mean[m]['psnr_y_db'] - bicubic:+.2f} dB" for m in models]
            text = (f"**Trained models vs bicubic on {name}** (mean PSNR-Y; bicubic: Keys a = −0.5, the literature's): "
                    f"{', '.join(parts)}. The residual models start at torch's bicubic (a = −0.75), which this "
                    "evaluation did not measure and which reads 0.13–0.2 dB above bicubic on Set5 / Set14 ×4.")
        below = any(mean[m]["psnr_y_db"] < bicubic for m in models)
        if below and not _checks_only(results):
            text += (" Fully trained pixel-loss SRResNets are ~2.5-3.6 dB above bicubic on Set14/Set5 (DESIGN.md), "
                     "and GAN fine-tuning gives back some of that for perceptual quality; being below bicubic here "
                     "is the budget, not the method.")
        lines.append(text)
    return lines


def _files(results: dict) -> List[str]:
    lines = ["## Raw data", "",
             f"- `{RESULTS_FILE}`: everything this report was written from (settings, machine, timings, per-image "
             "and pooled per-bin totals, Table 3 numbers).",
             "- `texture_bins.csv`: section 1, one row per method and TVAT bin.",
             *([f"- `{results['table3']['per_class']['report']}`: every snapshot's PSNR-Y per TVAT class, and the "
                "complex class's model alone."] if "report" in results["table3"].get("per_class", {}) else []),
             f"- `{results['table3']['mmsr_report']}`: `mmsr report`'s Table 3; `runs/*.run/summary.json`: the "
             "training summaries it read; `runs/*.safetensors`: the bundles.",
             "- " + ", ".join(f"`{p}`" for p in results["quality"].values())
             + " (and results.csv, report.md, compare/ next to them): `mmsr eval`'s output.",
             "- `logs/`: every command's output.",
             f"- `{CHARTS_DIR}/`: the charts."]
    return lines


def _draw_charts(results: dict, out: Path) -> Tuple[Dict[str, str], Optional[str]]:
    """Draw every chart; returns (chart key -> path relative to OUT, or a note on why none were drawn)."""
    try:
        import charts  # matplotlib is an optional extra; the GPU machines have none
    except ImportError as err:
        return {}, (f"Charts not drawn: {err}. Install the extra (`pip install '.[paper]'`) and run "
                    "`run_experiments.py --report-only --out OUT` to add them.")
    drawn: Dict[str, str] = {}
    folder = out / CHARTS_DIR
    texture = results["texture"]
    names = texture.get("display_names", {})
    gains = {names.get(m, m): g for m, g in _gains(_texture_psnr(texture)).items()}
    charts.texture_gain_chart(folder / "texture_gain.png", _bin_labels(texture["edges"]), gains)
    drawn["texture_gain"] = f"{CHARTS_DIR}/texture_gain.png"
    table3 = results["table3"]
    bars = [("baseline: wall", table3["runs"]["baseline"]["wall_time_s"], False),
            ("baseline: class", table3["runs"]["baseline"]["sum_s"], False)]
    bars += [(row.short, row.seconds, row.computed) for row in _time_rows(table3) if row.seconds is not None]
    charts.training_time_chart(folder / "training_time.png", bars)
    drawn["training_time"] = f"{CHARTS_DIR}/training_time.png"
    eq = table3.get("equal_quality")
    if eq is not None and "curves" in eq:
        series = {
            f"{_baseline(results)} baseline": [(p["one_device_s"], p["psnr_y"]) for p in eq["curves"]["baseline"]],
            "MMSR, one device": [(p["one_device_s"], p["psnr_y"]) for p in eq["curves"]["mmsr"]],
        }
        if all(p.get("separate_devices_s") is not None for p in eq["curves"]["mmsr"]):  # none for concurrent classes
            series["MMSR, separate devices (computed)"] = [(p["separate_devices_s"], p["psnr_y"]) for p in eq["curves"]["mmsr"]]
        charts.quality_time_chart(folder / "quality_time.png", f"PSNR-Y on {eq['set']} against training time",
                                  series, eq["equal"]["target_psnr"])
        drawn["quality_time"] = f"{CHARTS_DIR}/quality_time.png"
    for set_name, evaluation in _eval_results(results, out).items():
        images, scores = _quality_series(evaluation)
        path = folder / f"quality_{set_name}.png"
        charts.quality_chart(path, f"{set_name}: per-image quality (×{evaluation['scale']})", images, scores)
        drawn[f"quality_{set_name}"] = f"{CHARTS_DIR}/quality_{set_name}.png"
    return drawn, None


def write_report(out: Path) -> Path:
    """Draw the charts and write ``OUT/report.md`` from ``OUT/results.json``; returns the report's path.

    Raises:
        FileNotFoundError: OUT has no results.json (no run has finished there).
    """
    path = out / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the experiments into {out} first")
    results = json.loads(path.read_text(encoding="utf-8"))
    drawn, note = _draw_charts(results, out)
    lines = _header(results) + [""]
    if _checks_only(results):
        lines += [f"> {_CHECKS_ONLY}", ""]
    lines += _differences(results, out) + [""]
    if note:
        lines += [f"> {note}", ""]
    lines += _texture_section(results, drawn) + [""]
    lines += _time_section(results, out, drawn) + [""]
    lines += _quality_section(results, out, drawn) + [""]
    lines += _files(results)
    report = out / REPORT_FILE
    write_bytes_atomically(report, ("\n".join(lines) + "\n").encode("utf-8"))
    return report
