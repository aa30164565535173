"""What the tiling costs: quality and upscaling time of one bundle for several tile layouts.

Tiled inference runs each generator on ``(tile + 2 * context)²`` LR pixels per tile while the
tiles advance by ``tile - overlap``, so it does ``((tile + 2 context) / (tile - overlap))²`` times
the generator work of running one model on the whole image. Routing saves work only on the tiles
that go to shallower models. This script measures both sides on an HR folder (Set14 by default),
with the conventions of ``mmsr eval`` (LR from the training down-sampler, PSNR-Y with the scale as
crop border), for each layout and for whole-image inference through every class's generator:

    python benchmarks/tiling_tradeoff.py                              # default bundle, Set14, CPU
    python benchmarks/tiling_tradeoff.py --layouts 32/8/4,32/8/4/2 --max-runs 1,8 --hr ../shared/data/val/set5
    python benchmarks/tiling_tradeoff.py --device cuda --repeats 3

Each layout is ``TILE/OVERLAP/CONTEXT`` in LR pixels, routed by TVAT, or ``TILE/OVERLAP/CONTEXT/K``
with every tile forced to class K's generator (one model, tiled only to bound memory);
``--max-runs 1,8`` runs each layout with a window per tile and with blocks up to 8 tiles wide
sharing one; ``--promote off,on`` runs each with the Upscaler's ``promote`` off (pure TVAT
routing) and on (tiles go to the deepest model where a shared block makes that cheaper); the
table's "tiles per model" counts the model that ran each tile. Times are the fastest of
``--repeats`` passes over the folder, summed over its images; layouts run interleaved image by
image, so that the machine's load drifts into all of them alike.
"""
from __future__ import annotations

import argparse
import time

import torch

from mmsr import Upscaler
from mmsr.bundle import default_bundle_path, load_bundle
from mmsr.evaluate import list_images, make_lr, mod_crop
from mmsr.data import read_image
from mmsr.metrics import psnr


def parse_layout(text: str) -> tuple[int, int, int, int | None]:
    """``"32/8/4"`` as ``(tile, overlap, context, None)``; ``"128/16/8/2"`` forces every tile to class 2."""
    parts = text.split("/")
    if len(parts) not in (3, 4) or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(
            f"a layout is TILE/OVERLAP/CONTEXT[/CLASS] in LR pixels, e.g. 32/8/4 or 128/16/8/2; got {text!r}"
        )
    tile, overlap, context = (int(p) for p in parts[:3])
    return tile, overlap, context, int(parts[3]) if len(parts) == 4 else None


def work_factor(tile: int, overlap: int, context: int) -> float:
    """Generator work of a tiled pass relative to one whole-image pass (ignoring edge tiles)."""
    return ((tile + 2 * context) / (tile - overlap)) ** 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=None, help="bundle file (default: the shipped default)")
    parser.add_argument("--hr", default="../shared/data/val/set14", help="HR folder (default Set14)")
    parser.add_argument(
        "--layouts", default="32/8/4,32/8/0,32/4/4,48/8/4,64/8/4,64/16/4",
        type=lambda s: [parse_layout(t) for t in s.split(",")],
        help="comma-separated TILE/OVERLAP/CONTEXT[/CLASS] in LR pixels (CLASS forces every tile to that "
        "class's model); the first is the reference",
    )
    parser.add_argument(
        "--max-runs", default=None, type=lambda s: [int(v) for v in s.split(",")],
        help="comma-separated Upscaler max_run values; each layout runs with each (default: the Upscaler's)",
    )
    parser.add_argument(
        "--promote", default=None, type=lambda s: [{"on": True, "off": False}[v] for v in s.split(",")],
        help="comma-separated on/off: each layout runs with each Upscaler promote setting (default: the Upscaler's)",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=1, help="passes per image; the fastest counts")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    bundle = load_bundle(args.bundle or default_bundle_path())
    device = torch.device(args.device)
    scale = bundle.scale
    tiled, upscalers = {}, {}
    for layout in args.layouts:
        t, o, c, _ = layout
        for max_run in args.max_runs or [None]:
            for promote in args.promote or [None]:
                name = "/".join(str(v) for v in layout if v is not None)
                name += "" if max_run is None else f" max_run {max_run}"
                name += "" if promote is None else f" promote {'on' if promote else 'off'}"
                tiled[name] = layout
                options = {} if promote is None else {"promote": promote}
                upscalers[name] = Upscaler(bundle, device, tile_size=t, overlap=o, context=c, max_run=max_run, **options)
    whole = Upscaler(bundle, device)
    names = list(tiled) + [f"whole {cfg.name}" for cfg in bundle.configs]
    psnrs = {n: [] for n in names}
    seconds = {n: 0.0 for n in names}
    histograms = {n: [0] * bundle.num_classes for n in tiled}

    paths = list_images(args.hr)[: args.limit]
    for up in upscalers.values():  # first calls pay one-off allocation; keep them out of the times
        up.upscale(torch.zeros(3, up.tile_size + 8, up.tile_size + 8, dtype=torch.uint8, device=device))
    for path in paths:
        hr = mod_crop(read_image(path), scale)
        lr = make_lr(hr, scale).to(device)
        runs = [(n, (lambda u=upscalers[n], k=layout[3]: u.upscale(lr, force_class=k))) for n, layout in tiled.items()]
        runs += [(f"whole {cfg.name}", (lambda k=k: whole.upscale_whole(lr, k))) for k, cfg in enumerate(bundle.configs)]
        for name, fn in runs:
            best = float("inf")
            for _ in range(args.repeats):
                _sync(device)
                out, s = _timed(fn)
                _sync(device)
                best = min(best, s)
            seconds[name] += best
            if name in tiled:
                histograms[name] = [a + b for a, b in zip(histograms[name], out.model_histogram())]
                out = out.image
            psnrs[name].append(psnr(out.cpu(), hr, crop_border=scale))
        print(f"{path.name}: done", flush=True)

    reference = seconds[names[0]]
    print(
        f"\n{len(paths)} images of {args.hr}, bundle {args.bundle or 'default'} "
        f"({' / '.join(c.name for c in bundle.configs)}), {device}, {torch.get_num_threads()} threads\n"
    )
    print("| layout (tile / overlap / context) | generator work vs whole | tiles per model | PSNR-Y (dB) | time (s) | vs first |")
    print("|---|---|---|---|---|---|")
    for name in names:
        if name in tiled:
            t, o, c, _ = tiled[name]
            work, hist = f"{work_factor(t, o, c):.2f}×", " / ".join(map(str, histograms[name]))
        else:
            work, hist = "1.00×", ""
        mean_psnr = sum(psnrs[name]) / len(psnrs[name])
        print(f"| {name} | {work} | {hist} | {mean_psnr:.2f} | {seconds[name]:.2f} | {reference / seconds[name]:.2f}× |")


if __name__ == "__main__":
    main()
