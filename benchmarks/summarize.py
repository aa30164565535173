"""Print a pytest-benchmark JSON file as one table per group: median, speed-up over each
baseline in the same group, and effective bandwidth from the bytes each case recorded.

    python -m pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/summarize.py bench.json
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict


def _median(bench: dict) -> float:
    # A CUDA round may hold several back-to-back calls (conftest.run_timed); report one call's time.
    return bench["stats"]["median"] / bench["extra_info"].get("calls_per_round", 1)


def summarize(path: str) -> str:
    with open(path) as f:
        data = json.load(f)
    groups = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench["group"]].append(bench)
    lines = []
    for group, benches in groups.items():
        info = benches[0]["extra_info"]
        lines.append(f"\n### {group}  ({info.get('device')}, {info.get('threads')} threads, torch {info.get('torch')})")
        fastest = min(_median(b) for b in benches)
        lines.append("| case | median ms | GB/s | time / fastest |")
        lines.append("|---|---|---|---|")
        for b in sorted(benches, key=_median):
            median = _median(b)
            moved = b["extra_info"].get("bytes_moved", 0)
            gbps = f"{moved / median / 1e9:.1f}" if moved else "-"
            case = b["params"].get("impl") or b["params"].get("case") or b["name"]
            lines.append(f"| {case} | {median * 1e3:.3f} | {gbps} | {median / fastest:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] + " " + __doc__.splitlines()[1])
    parser.add_argument("json", help="a file written by pytest --benchmark-json")
    print(summarize(parser.parse_args().json))
