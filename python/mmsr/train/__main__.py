"""``python -m mmsr.train DATA --out BUNDLE ...``: the same as ``mmsr train``; this is the module
torchrun starts on every rank (``torchrun --nproc-per-node N -m mmsr.train ...``)."""
import sys

from ..cli.train_cmd import main

sys.exit(main(sys.argv[1:], prog="python -m mmsr.train"))
