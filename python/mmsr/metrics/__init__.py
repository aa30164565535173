"""Image quality metrics for SR evaluation, computed as the SR literature computes them.

- ``psnr`` and ``ssim``: full-reference fidelity, on MATLAB-style BT.601 luma by default
  (:mod:`mmsr.metrics.fidelity`);
- ``niqe``: no-reference naturalness, following the authors' MATLAB release (:mod:`mmsr.metrics.niqe`);
  ``check_niqe_model`` loads its parameters file up front;
- ``rgb_to_y``: the luma conversion that both use.

The perceptual index, PI = ((10 - Ma) + NIQE) / 2 (Blau et al. 2018), is not provided: its Ma et al.
term is a trained model whose parameters cannot be obtained offline, and a stand-in would give numbers
that are not PI. ``PI_UNAVAILABLE_REASON`` says so in one sentence for reports and the CLI.
"""

from .fidelity import psnr, rgb_to_y, ssim
from .niqe import check_niqe_model, niqe

PI_UNAVAILABLE_REASON = (
    "PI (perceptual index) is not reported because it needs the trained Ma et al. no-reference model, "
    "which cannot be obtained offline, so mmsr reports NIQE, PSNR and SSIM instead."
)

__all__ = ["PI_UNAVAILABLE_REASON", "check_niqe_model", "niqe", "psnr", "rgb_to_y", "ssim"]
