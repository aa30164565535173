"""Run the MMSR paper's experiments at small scale and write a Markdown report with charts.

    python benchmarks/paper/run_experiments.py --profile cpu --data /work/shared/data/train/sun_hays80 \\
        --val /work/shared/data/val --out runs/paper_cpu
    python benchmarks/paper/run_experiments.py --report-only --out runs/paper_cpu    # redraw report.md

It drives mmsr as a user would: `mmsr train` for MMSR, the 16-8 baseline and the Table 1 depths,
`mmsr report` for training time, `mmsr eval` for per-image quality, and mmsr's Python API (Upscaler,
tvat, classify) for PSNR per TVAT bin. The budgets of each profile (smoke, cpu, gpu) are in
profiles.py; the report's sections are described in report.py, the binning in bins.py.

OUT receives report.md, charts/, results.json (all the numbers the report uses), texture_bins.csv,
table3_mmsr_report.md, table3_quality.md (quality against training time), class_curves.md (quality per TVAT
class along the snapshots), runs/ (bundles and training runs), eval/ (`mmsr eval` per set) and logs/.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch

import mmsr
from mmsr.atomic import write_bytes_atomically
from mmsr.bundle import read_bundle_metadata
from mmsr.data import find_images
from mmsr.evaluate import list_images
from mmsr.evaluate_curve import curve_report, equal_quality, measure_curves
from mmsr.evaluate_seeds import compare_seeds, seed_report
from mmsr.evaluate_steps import step_account
from mmsr.evaluate_training import label_seeds, load_run
from mmsr.models import ModelConfig

from commands import mmsr_command, run_logged
from environment import describe_machine, load_average, now_utc
from per_class import per_class_stage
from profiles import PROFILES, Profile
from report import RESULTS_FILE, write_report
from texture_table import evaluate_texture_bins, quantile_edges, table_rows
from training import LOGS_DIR, RUNS_DIR, TrainedRun, TrainingRun, mmsr_report, plan_runs, run_training

_MMSR_NAME = "MMSR"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run the MMSR paper's experiments (Table 1, Table 3, Fig. 10 analogues) at small scale with "
        "mmsr's own tools, and write report.md with charts into --out.",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES),
                        help="budgets and devices (see profiles.py); required unless --report-only")
    parser.add_argument("--data", type=Path, help="folder of HR training photos, e.g. .../data/train/sun_hays80")
    parser.add_argument("--val", type=Path, help="folder holding the validation sets, e.g. .../data/val")
    parser.add_argument("--val-sets", default="set5,set14", help="sub-folders of --val to evaluate (default %(default)s)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--tvat-bins", type=int, default=0,
        help="Table 1 bins: 0 (default) uses MMSR's calibrated class boundaries; N >= 2 cuts the validation "
        "tiles' TVAT into N equal-count bins",
    )
    parser.add_argument(
        "--reuse", action="store_true",
        help="keep training runs already complete in --out, resume interrupted ones; evaluation is redone",
    )
    parser.add_argument(
        "--threads", type=int,
        help="torch threads of MMSR's and the baseline's training and of the evaluation (default: the profile's)",
    )
    parser.add_argument(
        "--seeds", metavar="S,S,...",
        help="train MMSR and the baseline once per seed and compare them seed by seed and over the seeds "
        "(default: the profile's, 0); each extra seed adds their training and snapshots (~27 min on the cpu profile)",
    )
    parser.add_argument(
        "--lr-schedule", choices=("constant", "cosine"),
        help="pixel-phase learning-rate schedule of every run (default: the profile's, constant; cosine makes "
        "Table 3's equal-quality reading favour the run with the longer schedule, see profiles.py)",
    )
    parser.add_argument("--report-only", action="store_true", help="only redraw report.md and charts from --out")
    return parser


def _fail(parser: argparse.ArgumentParser, message: str) -> None:
    parser.error(message)  # exits with status 2 and the usage line


def _check_folder(parser, path: Optional[Path], option: str, what: str) -> Path:
    if path is None:
        _fail(parser, f"{option} is required: {what}")
    if not path.exists():
        _fail(parser, f"{option} {str(path)!r} does not exist ({what})")
    if not path.is_dir():
        _fail(parser, f"{option} {str(path)!r} is not a folder ({what})")
    if option == "--data" and not find_images(path):
        _fail(parser, f"{option} {str(path)!r} holds no image files ({what})")
    return path


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Dict[str, Path]:
    """Validate a full run's arguments; returns the validation sets (name -> folder)."""
    if args.profile is None:
        _fail(parser, f"--profile is required: one of {', '.join(sorted(PROFILES))}")
    _check_folder(parser, args.data, "--data", "the training photos")
    _check_folder(parser, args.val, "--val", "the folder holding the validation sets")
    names = [n.strip() for n in args.val_sets.split(",") if n.strip()]
    if not names:
        _fail(parser, "--val-sets is empty: name at least one sub-folder of --val, e.g. set5,set14")
    sets = {}
    for name in names:
        folder = args.val / name
        if not folder.is_dir() or not find_images(folder):
            _fail(parser, f"--val {str(args.val)!r} has no validation set {name!r}: {str(folder)!r} is missing, not a "
                  "folder or holds no images (choose the sets with --val-sets)")
        sets[name] = folder
    if args.tvat_bins < 0 or args.tvat_bins == 1:
        _fail(parser, f"--tvat-bins must be 0 (MMSR's boundaries) or at least 2, got {args.tvat_bins}")
    if args.seeds is not None:
        try:
            seeds = tuple(int(part) for part in args.seeds.split(","))
            dataclasses.replace(PROFILES[args.profile], seeds=seeds)  # the profile checks them
        except ValueError:
            _fail(parser, f"--seeds must be distinct integers >= 0 separated by commas, e.g. 0,1,2; got {args.seeds!r}")
    if args.threads is not None and args.threads < 1:
        _fail(parser, f"--threads must be at least 1, got {args.threads}")
    if args.out.exists() and not args.out.is_dir():
        _fail(parser, f"--out {str(args.out)!r} exists and is not a folder")
    if (args.out / RUNS_DIR).exists() and not args.reuse:
        _fail(parser, f"--out {str(args.out)!r} already holds training runs; pass --reuse to keep them (and resume "
              "unfinished ones) or choose a new --out")
    profile = PROFILES[args.profile]
    if profile.uses_cuda:
        if not torch.cuda.is_available():
            _fail(parser, f"--profile {profile.name} trains on {profile.devices}, but torch sees no CUDA GPU; "
                  "use --profile cpu here")
        if not mmsr.build_info().get("cuda"):
            _fail(parser, f"--profile {profile.name} needs mmsr's CUDA kernels, but this mmsr was built without them "
                  "(rebuild with a CUDA compiler, MMSR_CUDA=ON)")
    return sets


def _evaluate_quality(profile: Profile, sets: Dict[str, Path], bundles: Dict[str, Path], out: Path) -> Dict[str, str]:
    """`mmsr eval` per validation set; returns set name -> its results.json relative to OUT."""
    files = {}
    for name, folder in sets.items():
        target = out / "eval" / name
        command = mmsr_command("eval", "--hr", str(folder), "--out", str(target), "--device", profile.eval_device)
        command += [arg for method, path in bundles.items() for arg in ("--bundle", f"{method}={path}")]
        if profile.eval_limit is not None:
            command += ["--limit", str(profile.eval_limit)]
        print(f"paper: mmsr eval on {name}", file=sys.stderr, flush=True)
        run_logged(command, out / LOGS_DIR / f"eval_{name}.log", f"mmsr eval ({name})", threads=profile.threads)
        files[name] = (target / "results.json").relative_to(out).as_posix()
    return files


def _train_timed(profile: Profile, runs: Sequence[TrainingRun], data: Path, out: Path, reuse: bool,
                 stages: Dict[str, float]) -> Dict[str, TrainedRun]:
    """MMSR and the baseline, which Table 3 times: seed by seed, each seed's two side by side when the
    profile says so (both then run beside the same neighbour), otherwise one after another."""
    trained: Dict[str, TrainedRun] = {}
    if not profile.timed_side_by_side:
        for run in runs:
            trained[run.name] = run_training(run, profile, data, out, threads=profile.threads, reuse=reuse)
            stages[f"train {run.name}"] = trained[run.name].seconds
        return trained
    for seed in dict.fromkeys(run.seed for run in runs):  # seeds in plan order
        pair = [run for run in runs if run.seed == seed]
        begin = time.perf_counter()
        # One seed at a time, so a pair never shares the machine with another seed's run.
        with ThreadPoolExecutor(max_workers=len(pair)) as pool:
            futures = {run.name: pool.submit(run_training, run, profile, data, out, threads=profile.threads, reuse=reuse)
                       for run in pair}
            for name, future in futures.items():
                trained[name] = future.result()
        stages[f"train {' + '.join(futures)} (side by side)"] = time.perf_counter() - begin
    return trained


def _train_all(profile: Profile, data: Path, out: Path, reuse: bool, stages: Dict[str, float]) -> Dict[str, TrainedRun]:
    """MMSR and the baseline (Table 3 times them), then the depth runs."""
    runs = plan_runs(profile)
    trained = _train_timed(profile, [run for run in runs if run.role != "depth"], data, out, reuse, stages)
    # Deepest first, so the longest run does not start last and leave the other workers idle.
    depth = sorted((r for r in runs if r.role == "depth"), key=lambda r: -ModelConfig.parse(r.configs[0]).blocks)
    begin = time.perf_counter()
    with ThreadPoolExecutor(max_workers=profile.parallel_depth_runs) as pool:
        futures = {
            run.name: pool.submit(run_training, run, profile, data, out, threads=profile.depth_threads, reuse=reuse)
            for run in depth
        }
        for name, future in futures.items():
            trained[name] = future.result()
    stages[f"train depths ({profile.parallel_depth_runs} at a time)"] = time.perf_counter() - begin
    return trained


def _table3(trained: Dict[str, TrainedRun], out: Path) -> dict:
    """Run `mmsr report` on MMSR and the baseline (every seed), and keep the numbers of the first seed's runs."""
    seeded = [(run.role, out / run.run_dir) for run in trained.values() if run.role in ("mmsr", "baseline")]
    report_file = out / "table3_mmsr_report.md"
    mmsr_report(seeded, "baseline", report_file, out / LOGS_DIR / "mmsr_report.log")
    runs = {}
    for name in ("mmsr", "baseline"):
        run_dir = out / trained[name].run_dir
        times = load_run(f"{name}={run_dir}")
        runs[name] = {
            "configs": list(times.configs), "devices": list(times.devices), "statuses": list(times.statuses),
            "steps": list(times.steps), "class_times_s": list(times.class_times), "wall_time_s": times.wall_time_s,
            "sum_s": times.sum_s, "max_s": times.max_s, "resumed": times.resumed,
        }
    concurrent = bool(_summary(trained["mmsr"], out).get("settings", {}).get("concurrent", False))
    return {"runs": runs, "mmsr_report": report_file.name, "mmsr_concurrent": concurrent}


def _equal_quality(profile: Profile, sets: Dict[str, Path], trained: Dict[str, TrainedRun], out: Path) -> dict:
    """Measure MMSR's and the baseline's snapshots on one validation set (what `mmsr report --quality` does).

    Returns the first seed's curves and comparison at equal quality, and with several seeds each
    seed's comparison and the seed-averaged curves' (``"seeds"``); the Markdown goes to table3_quality.md.
    """
    set_name = profile.curve_set if profile.curve_set in sets else next(iter(sets))
    seeded = [run for run in trained.values() if run.role in ("mmsr", "baseline")]
    runs = label_seeds([load_run(f"{run.role}={out / run.run_dir}") for run in seeded])
    print(f"paper: measuring {profile.snapshots + 1} snapshots of mmsr and baseline ({len(profile.seeds)} seed(s)) "
          f"on {set_name}", file=sys.stderr, flush=True)
    try:
        curves = measure_curves(runs, sets[set_name], device=profile.eval_device, limit=profile.eval_limit,
                                progress=False)
    except ValueError as err:  # e.g. --reuse of runs trained before the harness kept snapshots
        print(f"paper: no equal-quality comparison: {err}", file=sys.stderr, flush=True)
        return {"set": set_name, "error": str(err)}
    by_name = {run.name: curve for run, curve in zip(seeded, curves)}
    mmsr_curves = [c for run, c in zip(seeded, curves) if run.role == "mmsr"]
    base_curves = [c for run, c in zip(seeded, curves) if run.role == "baseline"]
    report_file = out / "table3_quality.md"
    total = len(list_images(sets[set_name]))
    measured = total if profile.eval_limit is None else min(profile.eval_limit, total)
    text = curve_report(curves, base_curves, str(sets[set_name]), images=(measured, total)) + "\n" \
        + seed_report(curves, base_curves)
    write_bytes_atomically(report_file, text.encode("utf-8"))
    eq = equal_quality(by_name["mmsr"], by_name["baseline"])
    result = {
        "set": set_name,
        "report": report_file.name,
        "curves": {name: [dataclasses.asdict(p) for p in by_name[name].points] for name in ("mmsr", "baseline")},
        "equal": _equal_dict(eq),
        "steps": _steps_dict(step_account(by_name["mmsr"], by_name["baseline"], eq)),
    }
    if len(profile.seeds) > 1:
        seeds = compare_seeds(mmsr_curves, base_curves, "mmsr")
        result["seeds"] = {
            "seeds": list(profile.seeds),
            "per_seed": [
                {"seed": m.run.seed, **_equal_dict(eq), "final_mmsr": m.points[-1].psnr_y,
                 "final_baseline": b.points[-1].psnr_y}
                for (m, b), eq in zip(seeds.pairs, seeds.per_seed)
            ],
            "mean_equal": _equal_dict(seeds.mean),
            "mean_steps": _steps_dict(step_account(seeds.run_mean, seeds.baseline_mean, seeds.mean)),
            "mean_curves": {name: [dataclasses.asdict(p) for p in m.points]
                            for name, m in (("mmsr", seeds.run_mean), ("baseline", seeds.baseline_mean))},
        }
    return result


def _equal_dict(eq) -> dict:
    return {**dataclasses.asdict(eq), "one_device_speedup": eq.one_device_speedup,
            "separate_devices_speedup": eq.separate_devices_speedup}


def _steps_dict(account) -> Optional[dict]:
    """The step account (mmsr.evaluate_steps) with its factors, or None where there is none."""
    if account is None:
        return None
    return {**dataclasses.asdict(account), "worth": account.worth, "step_cost": account.step_cost,
            "share": account.share}


def _summary(trained: TrainedRun, out: Path) -> dict:
    return json.loads((out / trained.run_dir / "summary.json").read_text(encoding="utf-8"))


def _perceptual_loss(trained: TrainedRun, out: Path) -> bool:
    # mmsr train says on its output which generator loss its GAN phase used.
    log = out / trained.log
    return log.is_file() and "perceptual loss: VGG19" in log.read_text(encoding="utf-8", errors="replace")


def _write_texture_csv(texture: dict, names: Dict[str, str], path: Path) -> None:
    rows = table_rows(texture)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["method", *[k for k in rows[0] if k != "method"]])
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "method": names.get(row["method"], row["method"])})
    write_bytes_atomically(path, buffer.getvalue().encode("utf-8"))


def write_results(out: Path, results: dict) -> Path:
    """Write ``OUT/results.json`` atomically: `--report-only` never reads half of one."""
    path = out / RESULTS_FILE
    write_bytes_atomically(path, (json.dumps(results, indent=1, allow_nan=False) + "\n").encode("utf-8"))
    return path


def run_experiments(profile: Profile, data: Path, sets: Dict[str, Path], out: Path, *, tvat_bins: int,
                    reuse: bool, command: str) -> Path:
    """Train, evaluate and report; returns report.md's path."""
    start, started_utc, load_start = time.perf_counter(), now_utc(), load_average()
    out.mkdir(parents=True, exist_ok=True)
    if profile.threads is not None:
        torch.set_num_threads(profile.threads)  # the texture-bin evaluation runs in this process
    stages: Dict[str, float] = {}
    trained = _train_all(profile, data, out, reuse, stages)

    begin = time.perf_counter()
    table3 = _table3(trained, out)
    stages["mmsr report"] = time.perf_counter() - begin

    begin = time.perf_counter()
    table3["equal_quality"] = _equal_quality(profile, sets, trained, out)
    stages["snapshots at equal quality"] = time.perf_counter() - begin

    begin = time.perf_counter()
    table3["per_class"] = per_class_stage(table3["equal_quality"], out / trained["mmsr"].run_dir,
                                          out / trained["baseline"].run_dir, sets, device=profile.eval_device,
                                          limit=profile.eval_limit, out=out)
    stages["snapshots per TVAT class"] = time.perf_counter() - begin

    # Table 1's methods, in table order: every depth (16-8 is the baseline run), then routed MMSR.
    depth_bundles = {run.configs[0]: out / run.bundle for run in trained.values() if run.role == "depth"}
    depth_bundles[profile.baseline_config] = out / trained["baseline"].bundle
    bundles = {config: depth_bundles[config] for config in profile.depth_configs}
    bundles[_MMSR_NAME] = out / trained["mmsr"].bundle
    meta = read_bundle_metadata(bundles[_MMSR_NAME])
    binning = dict(threshold=meta["threshold"], tile_size=meta["tile_size"], overlap=meta["overlap"], scale=meta["scale"])
    begin = time.perf_counter()
    if tvat_bins:
        edges = quantile_edges(sets, tvat_bins, limit=profile.eval_limit, **binning)
        source = f"{tvat_bins} equal-count bins of the validation tiles' TVAT"
    else:
        edges = list(meta["boundaries"])
        source = "MMSR's boundaries, calibrated by `mmsr train` on its training crops"
    texture = evaluate_texture_bins(sets, bundles, edges=edges, device=profile.eval_device, limit=profile.eval_limit,
                                    **binning)
    texture["edges_source"] = source
    texture["display_names"] = {profile.baseline_config: f"{profile.baseline_config} (baseline)",
                                _MMSR_NAME: f"MMSR ({' · '.join(profile.mmsr_configs)}, routed)"}
    _write_texture_csv(texture, texture["display_names"], out / "texture_bins.csv")
    stages["texture bins"] = time.perf_counter() - begin

    begin = time.perf_counter()
    quality = _evaluate_quality(profile, sets, {"baseline": bundles[profile.baseline_config], "mmsr": bundles[_MMSR_NAME]}, out)
    stages["mmsr eval"] = time.perf_counter() - begin

    results = {
        "format": 1,
        "profile": profile.to_dict(),
        "command": command,
        "data": str(data),
        "val_sets": {name: str(folder) for name, folder in sets.items()},
        "machine": describe_machine([profile.devices, profile.eval_device]),
        "started_utc": started_utc,
        "finished_utc": now_utc(),
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "wall_time_s": time.perf_counter() - start,
        "stages_s": stages,
        "training": [t.to_dict() for t in trained.values()],
        "training_data": _summary(trained["mmsr"], out).get("data", {}),  # image counts, held-out share
        "perceptual_loss": _perceptual_loss(trained["mmsr"], out),
        "texture": texture,
        "table3": table3,
        "quality": quality,
    }
    write_results(out, results)
    return write_report(out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.report_only:
        try:
            print(write_report(args.out))
        except FileNotFoundError as err:
            _fail(parser, str(err))
        return 0
    sets = _check_arguments(parser, args)
    command = shlex.join([Path(sys.executable).name, *sys.argv]) if argv is None else shlex.join(argv)
    profile = PROFILES[args.profile]
    if args.threads is not None:
        profile = dataclasses.replace(profile, threads=args.threads)
    if args.seeds is not None:
        profile = dataclasses.replace(profile, seeds=tuple(int(part) for part in args.seeds.split(",")))
    if args.lr_schedule is not None:
        profile = dataclasses.replace(profile, lr_schedule=args.lr_schedule)
    print(f"paper: profile {profile.name}: {profile.purpose}; planned ~{profile.planned_minutes:g} min",
          file=sys.stderr, flush=True)
    try:
        report = run_experiments(profile, args.data, sets, args.out, tvat_bins=args.tvat_bins, reuse=args.reuse,
                                 command=command)
    except RuntimeError as err:
        print(f"paper: error: {err}", file=sys.stderr)
        return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
