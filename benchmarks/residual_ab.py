"""A/B of SRResNet variants from scratch at a small budget: how fast each climbs on Set14.

    python benchmarks/residual_ab.py plain 500      # the paper's SRResNet (4 blocks here)
    python benchmarks/residual_ab.py skip_zero 500  # + bicubic input skip, zero tail: the "4-2r" config

Variants (words joined by "_"): ``plain``; ``skip`` adds the bicubic upsample of the input to the
output; ``zero`` starts the tail at zero (with ``skip``: an untrained model is bicubic); ``nobn``
drops BatchNorm (conv2 of each block scaled by 0.1 instead). Every variant: 4 residual blocks,
64 channels, x4, batch 16, 96-pixel HR crops of sun_hays80, L1, Adam at the given lr (default 2e-4,
constant), seed 0, one thread. Prints ``variant step seconds Set14-PSNR-Y`` at fixed steps; the
seconds exclude the evaluations. Results: benchmarks/README.md.
"""
import argparse
import glob
import time

import torch
import torch.nn.functional as F
from torch import nn

from mmsr.data import ClassBatches, load_folder
from mmsr.data import read_image
from mmsr.evaluate import make_lr, mod_crop
from mmsr.metrics import psnr
from mmsr.models import Generator

REPORT_STEPS = (50, 100, 200, 300, 400, 500, 700, 1000)


def build(variant: str) -> tuple[nn.Module, bool]:
    torch.manual_seed(0)
    g = Generator(scale=4, blocks=4, channels=64)
    if "nobn" in variant:
        for block in g.body:
            block.bn1, block.bn2 = nn.Identity(), nn.Identity()
            with torch.no_grad():  # the residual-branch scale that bn2's gamma gave
                block.conv2.weight.mul_(0.1)
        g.trunk[1] = nn.Identity()
    if "zero" in variant:
        nn.init.zeros_(g.tail.weight)
        nn.init.zeros_(g.tail.bias)
    return g, "skip" in variant


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant")
    parser.add_argument("steps", type=int)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--data", default="/work/shared/data/train/sun_hays80")
    parser.add_argument("--val", default="/work/shared/data/val/set14")
    args = parser.parse_args()
    torch.set_num_threads(1)
    g, skip = build(args.variant)

    def forward(x):
        y = g(x)
        return y + g.bicubic(x) if skip else y  # the input skip of the "r" configs, as Generator adds it

    batches = ClassBatches(load_folder(args.data, min_size=96).images, crop=96, scale=4, klass=0, boundaries=[],
                           threshold=0.0, seed=1)
    val = [(make_lr(hr, 4), hr) for hr in (mod_crop(read_image(f), 4) for f in sorted(glob.glob(f"{args.val}/*.png")))]

    def evaluate() -> float:
        g.eval()
        with torch.no_grad():
            scores = [float(psnr((forward(lr.float()[None] / 255).clamp(0, 1)[0] * 255).round().to(torch.uint8), hr,
                                 crop_border=4)) for lr, hr in val]
        g.train()
        return sum(scores) / len(scores)

    opt = torch.optim.Adam(g.parameters(), lr=args.lr)
    trained = 0.0
    for step in range(1, args.steps + 1):
        start = time.perf_counter()
        lr, hr = batches.next(16)
        loss = F.l1_loss(forward(lr), hr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        trained += time.perf_counter() - start
        if step in REPORT_STEPS or step == args.steps:
            print(args.variant, step, round(trained, 1), round(evaluate(), 3), flush=True)


if __name__ == "__main__":
    main()
