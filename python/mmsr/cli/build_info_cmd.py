"""`mmsr build-info`: what the native core was compiled with, and what torch sees."""
from __future__ import annotations

import json


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "build-info",
        help="show how mmsr was built (CUDA, OpenMP, version)",
        description="Print, as JSON, what mmsr's native core was compiled with (version, CUDA kernels and their "
        "GPU architectures, OpenMP and its thread count) and what torch sees (its version, whether a CUDA GPU is "
        "available).",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    import torch

    from .. import build_info

    info = dict(build_info())
    info["torch"] = torch.__version__
    info["cuda_available"] = torch.cuda.is_available()
    print(json.dumps(info, indent=2))
    return 0
