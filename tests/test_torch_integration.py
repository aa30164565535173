"""The ops as torch citizens: opcheck, torch.compile(fullgraph=True), streams and devices."""
from __future__ import annotations

import pytest
import torch
from conftest import CUDA, random_image

import mmsr
from mmsr import reference


def _samples(device):
    """(op, args) pairs covering every op, dtype family and an edge size, built once per device."""
    x = random_image((2, 3, 19, 23), device=device, seed=1)
    x8 = random_image((1, 3, 9, 7), torch.uint8, device, seed=2)
    xh = random_image((0, 3, 8, 8), torch.float16, device, seed=3)
    tiles, grid = mmsr.tile(x, 8, 3)
    sr_tiles = random_image((tiles.shape[0], 3, 16, 16), device=device, seed=4)
    return [
        (torch.ops.mmsr.vsp.default, (x,)),
        (torch.ops.mmsr.vsp.default, (x8,)),
        (torch.ops.mmsr.tvat.default, (x, 0.01)),
        (torch.ops.mmsr.tvat.default, (x8, 0.0)),
        (torch.ops.mmsr.tvat.default, (xh, 0.0)),
        (torch.ops.mmsr.classify.default, (torch.rand(50, device=device), [0.2, 0.7])),
        (torch.ops.mmsr.tile.default, (x, 8, 3)),
        (torch.ops.mmsr.tile.default, (x8, 16, 4)),
        (torch.ops.mmsr.stitch.default, (tiles, 19, 23, 8, 3, 1, "mean")),
        (torch.ops.mmsr.stitch.default, (sr_tiles, 19, 23, 8, 3, 2, "cosine")),
    ]


@pytest.mark.parametrize("index", range(10))
def test_opcheck(device, index):
    op, args = _samples(device)[index]
    torch.library.opcheck(op, args)


def _pipeline(x: torch.Tensor):
    """tile -> score -> classify -> fake per-class "SR" (x2 nearest) -> stitch, as upscale does."""
    tiles, grid = mmsr.tile(x, 16, 4)
    classes = mmsr.classify(mmsr.tvat(tiles), [0.05, 0.2])
    sr = torch.nn.functional.interpolate(tiles, scale_factor=2, mode="nearest") * (1 + classes.view(-1, 1, 1, 1))
    return mmsr.stitch(sr, grid, scale=2, blend="linear"), mmsr.vsp(x)


def test_compile_fullgraph(device):
    x = random_image((2, 3, 40, 36), device=device, seed=9)
    compiled = torch.compile(_pipeline, fullgraph=True, dynamic=False)
    for got, want in zip(compiled(x), _pipeline(x)):
        torch.testing.assert_close(got, want)


@pytest.mark.skipif(not CUDA, reason="no CUDA GPU present")
def test_runs_on_the_current_stream():
    # Regression guard (cf. pytorch/extension-cpp): a kernel launched on the default stream instead
    # of the current one races with work queued on a side stream and reads unfinished input.
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        x = torch.rand(512, 3, 64, 64, device="cuda")
        for _ in range(20):  # keep the side stream busy so a race would show
            x = x * 0.999 + 0.0005
        got = mmsr.tvat(x)
        tiles, grid = mmsr.tile(x, 32, 8)
        back = mmsr.stitch(tiles, grid, blend="cosine")
    stream.synchronize()
    torch.testing.assert_close(got, reference.tvat(x, mmsr.DEFAULT_TVAT_THRESHOLD))
    torch.testing.assert_close(back, x)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_runs_on_the_tensor_device_not_the_current_one():
    x = torch.rand(4, 3, 32, 32, device="cuda:1")
    with torch.cuda.device(0):
        got = mmsr.tvat(x)
    assert got.device == x.device
    torch.testing.assert_close(got, reference.tvat(x, mmsr.DEFAULT_TVAT_THRESHOLD))


@pytest.mark.skipif(not CUDA, reason="no CUDA GPU present")
def test_cuda_graph_capture():
    x = torch.rand(64, 3, 32, 32, device="cuda")
    out = mmsr.tvat(x)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = mmsr.tvat(x)
    x.copy_(torch.rand_like(x))
    graph.replay()
    torch.testing.assert_close(out, reference.tvat(x, mmsr.DEFAULT_TVAT_THRESHOLD))


def test_build_info_reports_the_build():
    info = mmsr.build_info()
    assert info["version"] == mmsr.__version__
    assert isinstance(info["cuda"], bool) and isinstance(info["openmp"], bool)


@pytest.mark.skipif(CUDA, reason="only meaningful without a GPU")
def test_cpu_only_machine_imports_a_cuda_build():
    # The CUDA runtime is linked statically: a CUDA build must import and run its CPU kernels on a
    # machine without a GPU driver, such as CI.
    assert mmsr.tvat(torch.rand(3, 8, 8)).shape == ()


def test_compile_with_changing_threshold_and_boundaries():
    # torch.compile turns a float argument that changes between calls into a symbol; the public
    # functions must still trace (their value checks run eagerly only).
    x, scores = torch.rand(2, 3, 16, 16), torch.rand(40)
    score = torch.compile(lambda t, th: mmsr.tvat(t, th), fullgraph=True)
    sort = torch.compile(lambda s, b: mmsr.classify(s, b), fullgraph=True)
    for threshold, bounds in ((0.01, [0.3, 0.6]), (0.5, [0.4, 0.7]), (0.9, [0.1, 0.2])):
        torch.testing.assert_close(score(x, threshold), mmsr.tvat(x, threshold))
        assert torch.equal(sort(scores, bounds), mmsr.classify(scores, bounds))
    dynamic = torch.compile(lambda t: mmsr.tvat(t), fullgraph=True, dynamic=True)
    torch.testing.assert_close(dynamic(x), mmsr.tvat(x))


def test_compile_with_tensor_boundaries():
    scores = torch.cat([torch.rand(30), torch.tensor([float("nan"), 0.3])])
    sort = torch.compile(lambda s: mmsr.classify(s, torch.tensor([0.3, 0.6])), fullgraph=True)
    assert torch.equal(sort(scores), mmsr.classify(scores, [0.3, 0.6]))


def test_export_with_a_dynamic_size_says_why_it_cannot():
    class Tiler(torch.nn.Module):
        def forward(self, x):
            return mmsr.tile(x, 8, 2)[0]

    height = torch.export.Dim("height", min=9, max=200)
    with pytest.raises(Exception, match="height is symbolic .*needs concrete image sizes"):
        torch.export.export(Tiler(), (torch.rand(1, 3, 20, 13),), dynamic_shapes=({2: height},))
    exported = torch.export.export(Tiler(), (torch.rand(1, 3, 20, 13),))  # static sizes work
    assert exported.module()(torch.rand(1, 3, 20, 13)).shape == (6, 3, 8, 8)


@pytest.mark.parametrize("call", ["vsp", "tvat", "tile", "classify"])
def test_sparse_and_nested_inputs_are_refused(call):
    dense = torch.rand(1, 3, 8, 8) if call != "classify" else torch.rand(8)
    run = {
        "vsp": lambda t: mmsr.vsp(t),
        "tvat": lambda t: mmsr.tvat(t),
        "tile": lambda t: mmsr.tile(t, 4, 1),
        "classify": lambda t: mmsr.classify(t, [0.5]),
    }[call]
    name = "scores" if call == "classify" else "x"
    with pytest.raises(TypeError, match=f"{name} must be a dense \\(strided\\) tensor, got layout torch.sparse_coo"):
        run(dense.to_sparse())
    nested = torch.nested.nested_tensor([dense[0] if call != "classify" else dense])
    with pytest.raises(TypeError, match=f"{name} must be a dense \\(strided\\) tensor, got a nested tensor"):
        run(nested)
