"""Print a pytest-benchmark JSON file as one table per group: median, speed-up over each
baseline in the same group, and effective bandwidth from the bytes each case recorded.

    python -m pytest benchmarks --benchmark-only --benchmark-json=bench.json
    python benchmarks/summarize.py bench.json
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict


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
        native = [b for b in benches if str(b["params"].get("impl", "")).startswith("native")]
        reference = min(native, key=lambda b: b["stats"]["median"]) if native else None
        lines.append("| implementation | median ms | GB/s | slower than native by |")
        lines.append("|---|---|---|---|")
        for b in sorted(benches, key=lambda b: b["stats"]["median"]):
            median = b["stats"]["median"]
            gbps = b["extra_info"].get("bytes_moved", 0) / median / 1e9
            ratio = f"{median / reference['stats']['median']:.1f}x" if reference else "-"
            impl = b["params"].get("impl", b["name"])
            lines.append(f"| {impl} | {median * 1e3:.3f} | {gbps:.1f} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(sys.argv[1]))
