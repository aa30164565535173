"""The reconstruction pipeline: tile -> TVAT -> classify -> per-class batches -> generators -> stitch.

:class:`Upscaler` runs a model bundle over images. Each LR tile is scored by TVAT, routed to its
texture class's SRResNet in batches, and the SR tiles are blended back into one image. Large images
go through in horizontal bands of tile rows, so memory holds one band's SR tiles, not the whole
image's (see :class:`Upscaler` for how bands are joined exactly).

Example:
    >>> from mmsr.bundle import Bundle
    >>> bundle = Bundle.random(["1-2w8", "2-2w8"], threshold=0.0, boundaries=[0.05], scale=2)
    >>> result = Upscaler(bundle).upscale(torch.rand(3, 50, 40))
    >>> result.image.shape, result.classes.shape
    (torch.Size([3, 100, 80]), torch.Size([2, 2]))
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union

import torch

from ._checks import check_bool, check_device, check_int
from .bundle import Bundle, load_bundle
from .context import WindowIndex, axis_windows, gather_windows, promote_blocks, tile_blocks
from .grid import TileGrid, make_grid
from .inference import conv_macs_per_pixel, prepare_generator
from .ops import BLENDS, _check_dense, classify, stitch, tile, tvat
from .reference import blend_ramp

__all__ = ["UpscaleResult", "Upscaler"]

_MODEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_IMAGE_DTYPES = (torch.uint8, torch.float16, torch.bfloat16, torch.float32)
# How far outside [0, 1] a float image may go (ringing from an earlier resize) before it is refused.
_RANGE_SLACK = 0.5
# A band holds at most this many bytes of float32 SR tiles (plus its stitched strip, about as much
# again). 256 MiB is ~1300 tiles of 32x32 at x4: one band covers any image up to ~1000x1000 LR, and
# a 4000x3000 input goes through in ~8-tile-row bands.
_BAND_BYTES = 256 * 2**20
_CPU_BATCH = 2  # see "Speed" in the Upscaler docstring
_GPU_BATCH = 64  # for 32x32 tiles; bigger tiles get proportionally fewer (same LR pixels per call)
_GPU_BATCH_PIXELS = _GPU_BATCH * 32 * 32
DEFAULT_CONTEXT = 4  # LR pixels; see the "Seams" paragraph of the Upscaler docstring
DEFAULT_MAX_RUN = 8  # tiles along a row in a block; see "Blocks" in the Upscaler docstring
BLOCK_ROWS = 4  # blocks stay within aligned groups of this many tile rows, and bands hold whole groups
# A block's window holds at most this many LR pixels, or a batch of single windows' worth if that
# is more, so that one call's memory stays near a batch's. A generator keeps ~4 KB per LR pixel in
# one float32 feature map of its last x2 upsampling stage: 32768 pixels are ~130 MB, a window of
# 8 tiles of 128x128 (136 x 976) would be ~530 MB.
_BLOCK_PIXELS = 32768


@dataclass(frozen=True)
class UpscaleResult:
    """What :meth:`Upscaler.upscale` returns.

    Attributes:
        image: the SR image, Tensor[3, H * scale, W * scale] or Tensor[B, 3, H * scale, W * scale]
            with the input's dtype (uint8, or float in [0, 1]) and device.
        classes: int64 CPU Tensor[rows, cols] (or [B, rows, cols]): each tile's texture class
            by TVAT (also with ``force_class``), tiles in row-major order as in ``grid``.
        grid: the LR tile grid.
        num_classes: K, the bundle's number of classes.
        forced: the ``force_class`` of the call, or None when tiles were routed.
        models: int64 CPU Tensor shaped like ``classes``: the class whose generator upscaled each
            tile: ``force_class`` everywhere when it was given, else different from ``classes``
            only where the Upscaler's ``promote`` sent a tile to the deepest model because a
            shared block made that cheaper; None means the same as ``classes``.

    Example:
        >>> from mmsr.bundle import Bundle
        >>> up = Upscaler(Bundle.random(["1-2w8"], threshold=0.0, boundaries=[], scale=2))
        >>> up.upscale(torch.rand(3, 40, 40)).histogram()
        [4]
    """

    image: torch.Tensor
    classes: torch.Tensor
    grid: TileGrid
    num_classes: int
    models: Optional[torch.Tensor] = None
    forced: Optional[int] = None  # the force_class every tile went to, or None when routed

    def histogram(self) -> List[int]:
        """Tiles per texture class, over all images of the batch: a list of K counts."""
        return torch.bincount(self.classes.flatten(), minlength=self.num_classes).tolist()

    def model_histogram(self) -> List[int]:
        """Tiles per class whose generator upscaled them (``models``), over all images: K counts."""
        models = self.classes if self.models is None else self.models
        return torch.bincount(models.flatten(), minlength=self.num_classes).tolist()

    def promoted(self) -> int:
        """How many tiles went to the deepest model instead of their texture class's (see ``promote``)."""
        if self.models is None or self.forced is not None:
            return 0
        return int((self.models != self.classes).sum())


class Upscaler:
    """Multi-model super-resolution with a bundle: every tile goes to its texture class's generator.

    Pipeline for each band of tile rows: :func:`mmsr.tile` -> :func:`mmsr.tvat` with the bundle's
    threshold -> :func:`mmsr.classify` with its boundaries -> each class's tiles, in batches of
    ``batch_size``, through that class's generator (clamped to [0, 1]) -> :func:`mmsr.stitch`.

    **Bands.** The image is processed ``band_rows`` tile rows at a time. A band's strip is tiled
    with the same grid rows the whole image would have, so its tiles and SR tiles are the same; rows
    shared with the next band are kept as weighted sums with the band's blend weights and finished
    when the next band adds its tiles. The result equals one-shot stitching up to float rounding,
    and memory holds one band's SR tiles (about 256 MiB by default) plus the output image.

    **Seams: context, overlap and margin.** Every conv pads with zeros, so a tile's SR output is
    wrong near the tile's edges: an SRResNet with n blocks sees ``2 * n + 8`` LR pixels around each
    pixel (its receptive radius), and pixels closer than that to a tile edge differ from
    whole-image inference. Three things hide this. ``context`` (default 4) feeds each generator its
    tile plus that many real image pixels on every side, shifted to stay inside the image, and
    crops the output back to the tile (:mod:`mmsr.context`); the feathered blends (``"linear"``,
    ``"cosine"``) ramp a tile's weight up across the overlap; and ``margin`` gives zero weight to the
    ``margin`` LR pixels next to every tile edge inside the image. Measured against whole-image
    inference at the default 32-pixel tiles and overlap 8 (PSNR with peak 1, x4, outputs ~0.5 +-
    0.15): random 2- and 8-block generators 48-69 dB with context 4 and a window per tile
    (on 256 x 256 images 47-56 dB per tile, 55-64 dB with the default blocks, below), 79-102 dB
    with context 8, and 32-42 dB with no context (margin 3); the trained default bundle (residual
    4-2r/8-6r/16-8r), each class forced, on Set14's baboon 71-81 dB with context 4 per tile,
    83-93 dB with blocks, and on Set5's butterfly 69-82 dB per tile, 53-66 dB without context (the
    earlier plain-SRResNet default: 54-58 and 38-45 dB). Context costs ``((tile + 2 * context) / tile)^2`` times the
    generator work (1.56x at 32 / 4); without it, overlap 16 with margin 6 on 48-pixel tiles also
    reaches 50-68 dB, at ``(tile / (tile - overlap))^2`` times the tiles.

    **Blocks.** With context, neighbouring tiles that go to the same class share one window: a
    block of up to ``max_run`` (default 8) tiles along a row and ``BLOCK_ROWS`` (4) rows, from its
    first tile's window start to its last tile's window end on each axis, each tile cropped out
    of it where its own window would have put it (:func:`mmsr.context.tile_blocks`, greedy in
    row-major order). Every tile keeps at least its own context and the output only moves closer
    to whole-image inference, while a block of n x m 32-pixel tiles costs ``(24 n + 16) (24 m +
    16) / (1600 n m)`` of n m separate windows (0.65 for one row of 8, 0.46 for 4 x 8). Blocks
    stay within aligned groups of 4 tile rows, and default bands hold whole groups, so the result
    does not depend on the band size (a ``band_rows`` below 4 cuts blocks short). Blocks of one
    class and window shape are batched together, ``batch_size`` tiles (at least one block) per
    call. To keep a call's memory near a batch's, a block's window holds at most 32768 LR pixels,
    or ``batch_size`` single windows' worth if that is more. ``max_run=1`` gives every tile its own
    window.

    **Promotion.** Routing cuts blocks wherever the class changes, and every cut costs the
    overlap and context of both sides: a lone smooth tile among busy ones costs more as a block of
    its own than it saves. With ``promote`` (the default), blocks are planned by
    :func:`mmsr.context.promote_blocks`: within each block of the deepest model's plan (4 rows x
    ``max_run`` tiles), either every tile goes to the deepest model or every tile to its own class's,
    whichever costs less by the models' conv multiply-adds per LR pixel (``costs``); in each group
    of 4 rows the plan is never estimated costlier than pure routing, nor than the deepest model on
    every tile when no class's model costs more than the deepest's (true of every mmsr-trained
    bundle), and it is decided per group, so bands give the whole image's plan. Tiles
    only ever move to the deepest model (the quality reference: on Set14 it scores above routing),
    and only from classes with cheaper models; ``UpscaleResult.models`` records the model that ran
    each tile, ``classes`` stays TVAT's. ``promote=False`` is pure TVAT routing, the MMSR method as
    the paper defines it (what ``mmsr eval`` measures by default). Nothing is promoted with
    ``force_class``, without context, or with a window per tile.

    **Speed.** Generators are rewritten for inference (:mod:`mmsr.inference`): the 9x9 tail conv
    at HR size, ~30-40% of a generator's CPU time, runs as a 5x5 conv before the last pixel
    shuffle (``fuse_tail``), BatchNorm is folded into the convs (``fold_bn``), and tensors are
    channels_last; on 2 CPU cores that makes a 4-2 / 16-8 generator 1.8x / 1.5-1.6x faster (benchmarks/README.md). Tiles go
    class by class in full batches, so each generator runs on ``batch_size`` tiles at a time
    whatever the class mix. On the CPU batching does not pay: 1, 2 or 4 tiles of 32x32 per call
    are within ~10% of each other (2 was best or close in interleaved runs on 2 cores) and 16 or
    64 per call are 5-20% slower (a big batch's HR feature maps fall out of cache), so the CPU
    default is 2; GPUs want many tiles per call (default 64 of 32x32, and as many LR pixels per
    call for other tile sizes: 4 of 128x128, where 64 would hold ~5 GB in one float32 feature map
    of the last x2 upsampling stage).

    **Routed vs one model.** Tiling repeats work: with a window per tile, each generator call
    covers ``(tile + 2 * context)^2`` LR pixels while tiles advance by ``tile - overlap``, ~2.8x
    the work of one whole-image pass at 32 / 8 / 4; blocks win back most of it, routing to
    shallower models another part. With the default bundle on Set14 (CPU, 2 threads, one
    interleaved run, ``benchmarks/tiling_tradeoff.py``): pure routing 3.50 s with blocks, every
    tile through its 16-8r 2.84 s, the 16-8r on each whole image 2.5 s; PSNR-Y 27.41 routed, 27.48
    for the 16-8r alone. Routing cuts blocks wherever the class changes, so with 26% of the tiles
    on shallower models it costs time instead of saving it. Promotion sends 112 of those 126
    tiles to the 16-8r: 2.79 s, as fast as the 16-8r alone, at 27.46 dB; a bundle whose shallow
    classes are also narrow (4-2w32r / 8-6w48r) is 1.03x faster than its 16-8r with it (2.75 vs 2.83 s).

    Args:
        bundle: a :class:`~mmsr.bundle.Bundle`, or a path to a bundle file.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        tile_size: LR tile edge; default the bundle's ``tile_size``.
        overlap: LR pixels shared by neighbouring tiles, ``0 <= overlap < tile_size``; default the
            bundle's ``overlap``.
        blend: ``"linear"`` (default), ``"cosine"`` or ``"mean"``; see :func:`mmsr.stitch`.
        margin: LR pixels at each inner tile edge given zero weight, ``0 <= 2 * margin <= overlap``;
            default ``3 * overlap // 8`` (3 for overlap 8, 6 for overlap 16) without context, 0 with it.
        context: LR pixels of real image around each tile that its generator also sees (cropped
            off its output; :mod:`mmsr.context`); default 4.
        max_run: with context, blocks of neighbouring tiles of one class, up to this many along a
            row (and 4 rows), share one window (default 8; 1 gives every tile its own window); see
            "Blocks".
        promote: send a block's tiles to the deepest model where that is estimated cheaper than
            cutting the block (default True; False is pure TVAT routing); see "Promotion".
        batch_size: tiles per generator call (>= 1); default 2 on CPU, and on CUDA 64 for 32x32
            tiles (``64 * 32**2 // tile_size**2``, at least 1).
        dtype: generator dtype: float32, or float16 / bfloat16 on CUDA only.
        band_rows: tile rows per band; default from a 256 MiB budget of SR tiles, and at least 4
            (one group) even where that exceeds the budget (very wide images or big batches).
            Rounded down to whole groups of 4 rows (blocks' height) so the result does not depend
            on it; a value below 4 cuts blocks short and the output moves slightly.
        fold_bn: fold BatchNorm into the convs (:func:`mmsr.inference.fold_batchnorm`; default True).
        fuse_tail: run the 9x9 HR tail conv as a 5x5 conv before the last pixel shuffle
            (:func:`mmsr.inference.fuse_subpixel_tail`; default True).
        channels_last: run the generators in channels_last memory format (default True).

    Attributes:
        bundle, device, dtype, tile_size, overlap, blend, margin, context, max_run, promote, batch_size,
            band_rows, channels_last: as resolved from the arguments.
        generators: one eval-mode generator per class, on ``device`` in ``dtype``.
        costs: per class, its generator's conv multiply-adds per LR pixel (what promotion weighs).

    Raises:
        ValueError, TypeError: a bad argument, named in the message (e.g. half precision on CPU,
            an unavailable device, an overlap not below the tile size).
        BundleError: ``bundle`` is a path to a missing or malformed bundle file.

    Example:
        >>> from mmsr.bundle import Bundle
        >>> bundle = Bundle.random(["1-2w8", "2-2w8"], threshold=0.0, boundaries=[0.05], scale=2)
        >>> up = Upscaler(bundle, tile_size=24, overlap=8, batch_size=16)
        >>> up.upscale(torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8)).image.dtype
        torch.uint8
    """

    def __init__(
        self,
        bundle: Union[Bundle, str, os.PathLike],
        device: Union[str, torch.device] = "cpu",
        *,
        tile_size: Optional[int] = None,
        overlap: Optional[int] = None,
        blend: str = "linear",
        batch_size: Optional[int] = None,
        dtype: torch.dtype = torch.float32,
        margin: Optional[int] = None,
        context: Optional[int] = None,
        max_run: Optional[int] = None,
        promote: bool = True,
        band_rows: Optional[int] = None,
        fold_bn: bool = True,
        fuse_tail: bool = True,
        channels_last: bool = True,
    ) -> None:
        if isinstance(bundle, (str, os.PathLike)):
            bundle = load_bundle(bundle)
        if not isinstance(bundle, Bundle):
            raise TypeError(f"bundle must be an mmsr Bundle or a path to a bundle file, got {type(bundle).__name__}")
        self.bundle = bundle
        self.device = check_device(device)
        if dtype not in _MODEL_DTYPES:
            raise TypeError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16, got {dtype}")
        if dtype != torch.float32 and self.device.type == "cpu":
            raise ValueError(
                f"dtype={dtype} is only available on CUDA: on the CPU, PyTorch's half-precision convolutions are "
                "slower than float32 or missing; use dtype=torch.float32 (the default) or device='cuda'"
            )
        self.dtype = dtype
        self.tile_size = check_int(bundle.tile_size if tile_size is None else tile_size, "tile_size", 1)
        self.overlap = check_int(bundle.overlap if overlap is None else overlap, "overlap", 0)
        if self.overlap >= self.tile_size:
            # Name where each value came from: a user who set only tile_size never passed overlap.
            source = lambda given: "" if given is not None else " (the bundle's default)"  # noqa: E731
            raise ValueError(
                f"overlap must be smaller than tile_size, got overlap={self.overlap}{source(overlap)} >= "
                f"tile_size={self.tile_size}{source(tile_size)}; pass a smaller overlap or a larger tile_size"
            )
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
        self.blend = blend
        self.context = DEFAULT_CONTEXT if context is None else check_int(context, "context", 0)
        self.max_run = DEFAULT_MAX_RUN if max_run is None else check_int(max_run, "max_run", 1)
        self.promote = check_bool(promote, "promote")
        default_margin = 0 if self.context else 3 * self.overlap // 8
        self.margin = default_margin if margin is None else check_int(margin, "margin", 0)
        if 2 * self.margin > self.overlap:
            raise ValueError(
                f"margin must be at most overlap / 2 so that every pixel keeps a tile that trusts it, "
                f"got margin={self.margin} with overlap={self.overlap}"
            )
        default_batch = (
            _CPU_BATCH if self.device.type == "cpu" else max(1, _GPU_BATCH_PIXELS // self.tile_size**2)
        )
        self.batch_size = default_batch if batch_size is None else check_int(batch_size, "batch_size", 1)
        self.band_rows = None if band_rows is None else check_int(band_rows, "band_rows", 1)
        self.channels_last = check_bool(channels_last, "channels_last")
        check_bool(fold_bn, "fold_bn")
        check_bool(fuse_tail, "fuse_tail")
        self._memory_format = torch.channels_last if self.channels_last else torch.contiguous_format

        # Rewritten in CPU float32, before any cast to half precision.
        self.generators = [
            prepare_generator(
                g, device=self.device, dtype=dtype, channels_last=self.channels_last, fold_bn=fold_bn, fuse_tail=fuse_tail
            )
            for g in bundle.generators()
        ]
        # Each model's conv multiply-adds per LR pixel: what `promote` weighs block plans by.
        self.costs = tuple(conv_macs_per_pixel(g) for g in self.generators)

    def __repr__(self) -> str:
        return (
            f"Upscaler({self.bundle!r}, device={str(self.device)!r}, tile_size={self.tile_size}, "
            f"overlap={self.overlap}, blend={self.blend!r}, margin={self.margin}, context={self.context}, "
            f"max_run={self.max_run}, promote={self.promote}, "
            f"batch_size={self.batch_size}, "
            f"dtype={self.dtype})"
        )

    @property
    def scale(self) -> int:
        """The bundle's upscaling factor."""
        return self.bundle.scale

    @property
    def num_classes(self) -> int:
        """K, the number of texture classes (one generator each)."""
        return self.bundle.num_classes

    @property
    def deepest_class(self) -> int:
        """The class with the most residual blocks (ties: the widest, then the last)."""
        return self.bundle.deepest_class

    def grid(self, height: int, width: int) -> TileGrid:
        """The LR tile grid this Upscaler uses for a ``height`` x ``width`` image.

        Example:
            >>> from mmsr.bundle import Bundle
            >>> up = Upscaler(Bundle.random(["1-2w8"], threshold=0.0, boundaries=[]), tile_size=32, overlap=8)
            >>> up.grid(100, 70).num_tiles
            12
        """
        return make_grid(height, width, self.tile_size, self.overlap)

    def _check_image(self, image) -> torch.Tensor:
        if not isinstance(image, torch.Tensor):
            raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
        if image.dim() not in (3, 4) or image.shape[-3] != 3:
            raise ValueError(f"image should be a [3, H, W] or [B, 3, H, W] RGB tensor, got shape {tuple(image.shape)}")
        if image.dtype not in _IMAGE_DTYPES:
            raise TypeError(f"image must be uint8, or float16 / bfloat16 / float32 in [0, 1], got {image.dtype}")
        if image.shape[-1] < 1 or image.shape[-2] < 1:
            raise ValueError(f"image is empty: H and W must be >= 1, got shape {tuple(image.shape)}")
        _check_dense(image, "image")
        if image.device.type != "cpu" and image.device != self.device:
            raise ValueError(
                f"image is on {image.device} but this Upscaler runs on {self.device}; pass a CPU tensor "
                f"(moved band by band) or one on {self.device}"
            )
        if image.is_floating_point():
            # NaN or inf would come out as blotches one tile wide (and route their tiles as the most
            # complex class): refuse them here, by count, rather than return a broken image.
            bad = int((~torch.isfinite(image)).sum())
            if bad:
                raise ValueError(f"image holds {bad} NaN or inf values; mmsr upscales finite images with values in [0, 1]")
            if image.numel():
                low, high = (float(v) for v in torch.aminmax(image))  # in its own dtype: no float32 copy
                # Slightly outside [0, 1] (ringing from an earlier resize) is clamped by the models'
                # output; far outside is a mistake, most often 0-255 values in a float tensor.
                if low < -_RANGE_SLACK or high > 1 + _RANGE_SLACK:
                    hint = "; divide 0-255 values by 255, or pass uint8" if high > 2 else ""
                    raise ValueError(
                        f"image values range from {low:g} to {high:g}; float images must be in [0, 1]{hint}"
                    )
        return image if image.dim() == 4 else image.unsqueeze(0)

    def _check_class(self, index, name: str) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"{name} must be an int class index, got {type(index).__name__} {index!r}")
        if not 0 <= index < self.num_classes:
            raise ValueError(f"{name} must be in [0, {self.num_classes - 1}] for this {self.num_classes}-class bundle, got {index}")
        return index

    def _run_generator(self, k: int, lr: torch.Tensor) -> torch.Tensor:
        """Tensor[n, 3, h, w] (uint8 or float, on the device) -> float32 SR in [0, 1]."""
        x = lr.to(self.dtype)
        if lr.dtype == torch.uint8:
            x = x.div_(255)
        x = x.contiguous(memory_format=self._memory_format)
        return self.generators[k](x).float().clamp_(0, 1)

    def _upscale_band(
        self,
        strip: torch.Tensor,
        edge: Optional[Tuple[torch.Tensor, torch.Tensor]],
        force_class: Optional[int],
        progress: Optional[Callable[[int], None]],
        windows: Optional[Tuple[torch.Tensor, WindowIndex, WindowIndex]] = None,
        first_row: int = 0,
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """strip Tensor[B, 3, h, W] on the device -> (stitched float32 [B, 3, h*s, W*s], each
        tile's texture class [B*N], the class whose model ran each tile [B*N]).

        ``edge`` is (row masks [rows, th*s], column masks [cols, tw*s]) for this band's tiles, or
        None without a margin; each SR tile is multiplied by its masks before stitching.
        ``windows`` is (source rows around the strip, this band's row windows with starts in the
        source's rows, column windows), or None without context. ``first_row`` is the band's
        first tile row in the image's grid (blocks align to it).
        """
        tiles, grid = tile(strip, self.tile_size, self.overlap)
        count = tiles.shape[0]
        # Texture classes are computed even when every tile goes to one model: the class map then
        # still says what routing would have done (TVAT costs little next to any generator).
        textures = classify(tvat(tiles, self.bundle.threshold), self.bundle.boundaries)
        if force_class is None:
            classes = textures
        else:
            classes = torch.full((count,), force_class, dtype=torch.int64, device=tiles.device)
        s = self.scale
        sr = torch.empty(count, 3, grid.tile_h * s, grid.tile_w * s, dtype=torch.float32, device=tiles.device)
        if windows is not None:
            promote = self.promote and force_class is None
            ran = self._run_in_blocks(classes, grid, windows, sr, progress, first_row, promote)
            return self._finish_band(sr, grid, edge), textures, ran
        # Tiles sorted by class (stable, so row-major within a class) make every batch one class's.
        order = torch.argsort(classes, stable=True)
        per_class = torch.bincount(classes, minlength=self.num_classes).tolist()
        start = 0
        for k, n in enumerate(per_class):
            for first in range(start, start + n, self.batch_size):
                index = order[first : min(first + self.batch_size, start + n)]
                sr.index_copy_(0, index, self._run_generator(k, tiles.index_select(0, index)))
                if progress is not None:
                    progress(index.numel())
            start += n
        return self._finish_band(sr, grid, edge), textures, classes

    def _finish_band(self, sr: torch.Tensor, grid: TileGrid, edge) -> torch.Tensor:
        """The band's SR tiles, edge-masked when ``edge`` is given, stitched into its strip."""
        s = self.scale
        if edge is not None:
            row_masks, col_masks = edge
            grid_view = sr.view(-1, grid.rows, grid.cols, 3, grid.tile_h * s, grid.tile_w * s)
            grid_view.mul_(row_masks[None, :, None, None, :, None] * col_masks[None, None, :, None, None, :])
        return stitch(sr, grid, s, self.blend)

    def _run_in_blocks(
        self, classes: torch.Tensor, grid: TileGrid, windows, sr: torch.Tensor, progress, first_row: int, promote: bool
    ) -> torch.Tensor:
        """Fill ``sr`` with every tile's SR, each block of same-class neighbours through one shared
        window; return the class whose model ran each tile (int64 [B*N]).

        With ``promote``, blocks are planned by :func:`mmsr.context.promote_blocks` (some tiles
        go to the deepest model where that is cheaper). With ``max_run`` 1 every block is one tile
        (its own window). Blocks of one class and window shape are batched, ``batch_size`` tiles
        (at least one block) per generator call; each tile is cropped out of its block's output where its own
        window would be. The whole band is planned on the host first and its indices go to the
        device in one copy each, so that no batch waits for the one before it (a host-to-GPU copy
        synchronises).
        """
        source, rows, cols = windows
        s = self.scale
        row_starts, row_offsets = rows.starts.tolist(), rows.offsets.tolist()
        col_starts, col_offsets = cols.starts.tolist(), cols.offsets.tolist()
        stride_h, stride_w = grid.tile_h - grid.overlap_h, grid.tile_w - grid.overlap_w
        budget = max(_BLOCK_PIXELS, self.batch_size * rows.length * cols.length)

        def fits(block_rows: int, block_cols: int) -> bool:
            if block_cols > self.max_run:
                return False
            height = (block_rows - 1) * stride_h + rows.length
            width = (block_cols - 1) * stride_w + cols.length
            return height * width <= budget

        def window_shape(block) -> Tuple[int, int]:
            r1, c1 = block.row + block.rows - 1, block.col + block.cols - 1
            height = row_starts[r1] + rows.length - row_starts[block.row]
            return height, col_starts[c1] + cols.length - col_starts[block.col]

        def window_area(block) -> int:
            height, width = window_shape(block)
            return height * width

        row_group = BLOCK_ROWS if self.max_run > 1 else 1  # a group of 1 row: no block grows down
        layout = dict(rows=grid.rows, cols=grid.cols, fits=fits, row_group=row_group, first_row=first_row)
        if promote:
            blocks = promote_blocks(
                classes.tolist(), window_area=window_area, costs=self.costs, target=self.deepest_class, **layout
            )
        else:
            blocks = tile_blocks(classes.tolist(), **layout)
        groups = defaultdict(list)  # (class, window height, window width) -> blocks
        ran = classes.cpu().clone() if promote else classes  # without promotion every tile runs its class
        per_image = grid.rows * grid.cols
        for block in blocks:
            groups[(block.cls, *window_shape(block))].append(block)
            if promote:
                for r in range(block.row, block.row + block.rows):
                    first = block.image * per_image + r * grid.cols + block.col
                    ran[first : first + block.cols] = block.cls

        # windows: (image, row start, column start) per block; crops: (block within its batch, row
        # and column of the tile in the block's SR window, tile index) per tile. A tile sits where
        # its own window would put it: its window's start plus its offset in it, minus the block's start.
        windows_plan, crops_plan, batches = [], [], []  # batches: (class, height, width, block slice, tile slice)

        def plan_batch(key, batch_blocks) -> None:
            first_block, first_tile = len(windows_plan), len(crops_plan)
            for n, b in enumerate(batch_blocks):
                windows_plan.append((b.image, row_starts[b.row], col_starts[b.col]))
                crops_plan.extend(
                    (
                        n,
                        (row_starts[r] + row_offsets[r] - row_starts[b.row]) * s,
                        (col_starts[c] + col_offsets[c] - col_starts[b.col]) * s,
                        b.image * per_image + r * grid.cols + c,
                    )
                    for r in range(b.row, b.row + b.rows)
                    for c in range(b.col, b.col + b.cols)
                )
            batches.append((*key, slice(first_block, len(windows_plan)), slice(first_tile, len(crops_plan))))

        for key, members in groups.items():
            batch_blocks, tiles = [], 0
            for n, block in enumerate(members):
                batch_blocks.append(block)
                tiles += block.rows * block.cols
                if tiles >= self.batch_size or n == len(members) - 1:
                    plan_batch(key, batch_blocks)
                    batch_blocks, tiles = [], 0
        window_index = torch.tensor(windows_plan, dtype=torch.int64).t().to(sr.device)
        crop_index = torch.tensor(crops_plan, dtype=torch.int64).t().to(sr.device)

        for k, height, width, block_slice, tile_slice in batches:
            image, row, col = window_index[:, block_slice]
            out = self._run_generator(k, gather_windows(source, image, row, col, height, width))
            which, row_at, col_at, tile_index = crop_index[:, tile_slice]
            crops = gather_windows(out, which, row_at, col_at, grid.tile_h * s, grid.tile_w * s)
            sr.index_copy_(0, tile_index, crops.contiguous())
            if progress is not None:
                progress(tile_slice.stop - tile_slice.start)
        return ran

    def _band_rows(self, batch: int, grid: TileGrid) -> int:
        if self.band_rows is not None:
            rows = self.band_rows
        else:
            tile_bytes = 3 * grid.tile_h * grid.tile_w * self.scale**2 * 4
            # At least one whole group, even past the budget (panoramas, big batches): a narrower
            # default band would make an image's result depend on its width and batch.
            rows = max(BLOCK_ROWS, _BAND_BYTES // (tile_bytes * grid.cols * batch))
        # Whole groups of BLOCK_ROWS, so that the bands' blocks are the whole image's (and the
        # result does not depend on the band size); a band narrower than a group cuts blocks short.
        return rows - rows % BLOCK_ROWS if rows >= BLOCK_ROWS else rows

    def upscale(
        self,
        image: torch.Tensor,
        *,
        force_class: Optional[int] = None,
        progress: Optional[Callable[[int], None]] = None,
    ) -> UpscaleResult:
        """Upscale by routing every tile to its texture class's generator.

        Args:
            image: Tensor[3, H, W] or Tensor[B, 3, H, W]; uint8, or float16 / bfloat16 / float32 in
                [0, 1] (values beyond [-0.5, 1.5], such as 0-255 in a float tensor, are refused); on
                the CPU (moved to the device band by band) or on this Upscaler's device.
            force_class: send every tile to this class's generator instead of routing by TVAT (e.g.
                ``up.deepest_class``, the single-model baseline through the same pipeline). TVAT
                still classifies the tiles (``classes``); ``models`` holds ``force_class``.
            progress: called with the number of tiles finished after every generator batch (e.g.
                a tqdm bar's ``update``); the total is ``B * up.grid(H, W).num_tiles``.

        Returns:
            :class:`UpscaleResult`: ``image`` with the input's dtype, device and dimensionality,
            values clamped to [0, 1] (uint8 rounded); ``classes`` [rows, cols] or [B, rows, cols].

        Raises:
            TypeError, ValueError: a bad ``image`` or ``force_class`` (the message names it).
            RuntimeError: the models returned NaN or inf (a damaged bundle); no image is returned.

        Example:
            >>> from mmsr.bundle import Bundle
            >>> up = Upscaler(Bundle.random(["1-2w8", "2-2w8"], threshold=0.0, boundaries=[0.05], scale=2))
            >>> result = up.upscale(torch.rand(2, 3, 40, 40), force_class=up.deepest_class)
            >>> result.image.shape, result.model_histogram()
            (torch.Size([2, 3, 80, 80]), [0, 8])
        """
        x = self._check_image(image)
        if force_class is not None:
            force_class = self._check_class(force_class, "force_class")
        B, _, H, W = x.shape
        grid = self.grid(H, W)
        s = self.scale
        out = torch.empty(B, 3, H * s, W * s, dtype=image.dtype, device=image.device)
        classes = torch.empty(B, grid.rows, grid.cols, dtype=torch.int64)
        models = torch.empty_like(classes)
        if B > 0:
            with torch.inference_mode():
                self._upscale_into(x, grid, out, classes, models, force_class, progress)
        if image.dim() == 3:
            return UpscaleResult(out[0], classes[0], grid, self.num_classes, models[0], force_class)
        return UpscaleResult(out, classes, grid, self.num_classes, models, force_class)

    def _edge_masks(self, origins: Tuple[int, ...], tile_len: int, length: int) -> torch.Tensor:
        """float32 [count, tile_len * scale]: 0 within ``margin`` LR pixels of a tile edge inside the image."""
        s, cut = self.scale, self.margin * self.scale
        masks = torch.ones(len(origins), tile_len * s, device=self.device)
        for k, origin in enumerate(origins):
            if origin > 0:
                masks[k, :cut] = 0
            if origin + tile_len < length:
                masks[k, tile_len * s - cut :] = 0
        return masks

    def _axis_weights(self, origins, tile_len: int, overlap: int, masks, start: int, size: int):
        """(plain, masked) blend weight sums over ``size`` SR pixels from LR ``start``, as the kernel weighs tiles."""
        s = self.scale
        ramp = blend_ramp(tile_len * s, overlap * s, self.blend, self.device)
        plain = torch.zeros(size, device=self.device)
        masked = torch.zeros(size, device=self.device)
        for origin, mask in zip(origins, masks):
            at = (origin - start) * s
            plain[at : at + tile_len * s] += ramp
            masked[at : at + tile_len * s] += ramp * mask
        return plain, masked

    def _upscale_into(self, x, grid, out, classes, models, force_class, progress) -> None:
        # Band r0..r1 covers LR rows ys[r0] .. ys[r1-1] + tile_h. Its rows below ys[r1] are final
        # (no later tile reaches them); the rest are carried as weighted sums and completed by the
        # next band. mmsr.stitch divides by the plain blend weights (row sum x column sum); with a
        # margin, tiles were multiplied by their edge masks, so its output is rescaled to divide by
        # the masked weights instead. Both factor into rows and columns, so bands only need the row
        # sums: band value * plain row sum * column factor is the band's weighted sum.
        s, th, ys = self.scale, grid.tile_h, grid.ys
        band_rows = self._band_rows(x.shape[0], grid)
        margin = self.margin > 0 and (grid.rows > 1 or grid.cols > 1)
        row_masks = self._edge_masks(ys, th, grid.height)
        col_masks = self._edge_masks(grid.xs, grid.tile_w, grid.width)
        col_plain, col_masked = self._axis_weights(grid.xs, grid.tile_w, grid.overlap_w, col_masks, 0, grid.width * s)
        col_factor = col_plain / col_masked
        col_windows = axis_windows(grid.xs, grid.tile_w, grid.width, self.context).index(self.device)
        carry_sum = carry_weight = None
        for r0 in range(0, grid.rows, band_rows):
            r1 = min(r0 + band_rows, grid.rows)
            y0, y1 = ys[r0], ys[r1 - 1] + th
            windows = None
            if self.context:
                # 2 x context rows beyond the band always hold its windows (see mmsr.context).
                e0, e1 = max(0, y0 - 2 * self.context), min(grid.height, y1 + 2 * self.context)
                source = x[:, :, e0:e1].to(self.device, non_blocking=True)
                strip = source[:, :, y0 - e0 : y1 - e0]
                rows = axis_windows(ys[r0:r1], th, grid.height, self.context).index(self.device, shift=e0)
                windows = (source, rows, col_windows)
            else:
                strip = x[:, :, y0:y1].to(self.device, non_blocking=True)
            edge = (row_masks[r0:r1], col_masks) if margin else None
            band, band_classes, band_models = self._upscale_band(strip, edge, force_class, progress, windows, r0)
            classes[:, r0:r1] = band_classes.view(x.shape[0], r1 - r0, grid.cols).cpu()
            models[:, r0:r1] = band_models.view(x.shape[0], r1 - r0, grid.cols).cpu()
            if r0 == 0 and r1 == grid.rows and not margin:
                out.copy_(self._to_output(band, out.dtype))  # stitch's own result, bit for bit
                return
            plain, weight = self._axis_weights(
                ys[r0:r1], th, grid.overlap_h, row_masks[r0:r1], y0, (y1 - y0) * s
            )
            band.mul_(plain[:, None] * col_factor if margin else plain[:, None])  # the band's weighted sums
            if carry_sum is not None:
                n = carry_weight.numel()
                band[:, :, :n] += carry_sum
                weight[:n] += carry_weight
            done = ((ys[r1] if r1 < grid.rows else grid.height) - y0) * s
            finished = band[:, :, :done].div_(weight[:done, None])
            out[:, :, y0 * s : y0 * s + done] = self._to_output(finished, out.dtype)
            # A copy, so the rest of this band's strip is freed before the next band is stitched.
            carry_sum, carry_weight = band[:, :, done:].clone(), weight[done:]

    @staticmethod
    def _to_output(sr: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """float32 SR -> ``dtype``, overwriting ``sr`` (no caller reads it again: saves a copy)."""
        # Clamping would pass NaN on (float) or turn it into black (uint8): a damaged bundle that
        # still loads must not give a broken image with no error.
        bad = int((~torch.isfinite(sr)).sum())
        if bad:
            raise RuntimeError(
                f"the models returned {bad} NaN or inf values for this image; the bundle's weights may be "
                "damaged (load it again from a good copy)"
            )
        if dtype == torch.uint8:
            return sr.mul_(255).round_().clamp_(0, 255).to(torch.uint8)
        return sr.clamp_(0, 1).to(dtype)

    def upscale_whole(self, image: torch.Tensor, class_index: Optional[int] = None) -> torch.Tensor:
        """Untiled inference: the whole image through one class's generator, for comparison.

        Memory grows with the image (no bands): the generator's feature maps at HR size are about
        ``B * channels * (H * scale) * (W * scale)`` floats each.

        Args:
            image: as for :meth:`upscale`.
            class_index: which class's generator; default :attr:`deepest_class`.

        Returns:
            Tensor[3, H * scale, W * scale] (or with the batch dimension), the input's dtype and
            device, clamped to [0, 1] (uint8 rounded).

        Example:
            >>> from mmsr.bundle import Bundle
            >>> up = Upscaler(Bundle.random(["1-2w8"], threshold=0.0, boundaries=[], scale=2))
            >>> up.upscale_whole(torch.rand(3, 30, 20)).shape
            torch.Size([3, 60, 40])
        """
        x = self._check_image(image)
        k = self.deepest_class if class_index is None else self._check_class(class_index, "class_index")
        with torch.inference_mode():
            sr = self._run_generator(k, x.to(self.device))
            sr = self._to_output(sr, image.dtype)
        # Copied out of inference mode, as upscale() returns it: an inference tensor refuses
        # in-place updates and autograd in the caller's code.
        out = sr.to(image.device, copy=True)
        return out if image.dim() == 4 else out[0]
