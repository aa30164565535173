"""Gradients of the ops match autograd through the pure-PyTorch references."""
from __future__ import annotations

import pytest
import torch
from conftest import random_image

import mmsr
from mmsr import reference

BLENDS = ["mean", "linear", "cosine"]


def _grad(fn, x, weight):
    x = x.detach().clone().requires_grad_()
    (grad,) = torch.autograd.grad((fn(x) * weight).sum(), x)
    return grad


@pytest.mark.parametrize("shape", [(2, 3, 13, 11), (1, 1, 2, 2), (1, 5, 1, 7)], ids=str)
def test_vsp_gradient(device, shape):
    x = random_image(shape, device=device, seed=1)
    weight = torch.randn(shape[0], shape[2], shape[3], device=device)
    torch.testing.assert_close(_grad(mmsr.vsp, x, weight), _grad(reference.vsp, x, weight), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threshold", [0.0, 0.05, 0.3])
def test_tvat_gradient(device, threshold):
    x = random_image((3, 3, 12, 9), device=device, seed=2)
    weight = torch.tensor([1.0, -2.0, 0.5], device=device)
    got = _grad(lambda t: mmsr.tvat(t, threshold), x, weight)
    want = _grad(lambda t: reference.tvat(t, threshold), x, weight)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_half_precision_gradient_keeps_the_dtype(device):
    x = random_image((1, 3, 8, 8), torch.bfloat16, device, seed=3).requires_grad_()
    mmsr.tvat(x).sum().backward()
    assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()


@pytest.mark.parametrize("tile_size, overlap", [(5, 2), (4, 0), (20, 3), (6, 5)])
def test_tile_gradient(device, tile_size, overlap):
    x = random_image((2, 3, 13, 11), device=device, seed=4)
    tiles, grid = mmsr.tile(x, tile_size, overlap)
    weight = torch.randn_like(tiles)
    got = _grad(lambda t: mmsr.tile(t, tile_size, overlap)[0], x, weight)
    torch.testing.assert_close(got, _grad(lambda t: reference.tile(t, grid), x, weight), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("blend", BLENDS)
@pytest.mark.parametrize("scale", [1, 3])
@pytest.mark.parametrize("tile_size, overlap", [(5, 2), (6, 5), (20, 3)])
def test_stitch_gradient(device, blend, scale, tile_size, overlap):
    grid = mmsr.tile(torch.zeros(2, 3, 13, 11), tile_size, overlap)[1]
    tiles = random_image((2 * grid.num_tiles, 3, grid.tile_h * scale, grid.tile_w * scale), device=device, seed=5)
    weight = torch.randn(2, 3, 13 * scale, 11 * scale, device=device)
    got = _grad(lambda t: mmsr.stitch(t, grid, scale, blend), tiles, weight)
    want = _grad(lambda t: reference.stitch(t, grid, scale, blend), tiles, weight)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_training_through_tile_and_stitch_under_compile(device):
    # A model trained through tile -> conv -> stitch, compiled, gets the eager gradients.
    conv = torch.nn.Conv2d(3, 3, 3, padding=1).to(device)

    def loss(x):
        tiles, grid = mmsr.tile(x, 8, 2)
        return (mmsr.stitch(conv(tiles), grid, blend="linear") - x).abs().mean() + mmsr.tvat(x).mean()

    x = random_image((1, 3, 20, 18), device=device, seed=6)
    eager = torch.autograd.grad(loss(x), list(conv.parameters()))
    compiled = torch.autograd.grad(torch.compile(loss, fullgraph=True)(x), list(conv.parameters()))
    for got, want in zip(compiled, eager):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["vsp", "tvat", "tile", "stitch"])
def test_opcheck_with_gradients(device, name):
    x = random_image((2, 3, 19, 23), device=device, seed=7).requires_grad_()
    grid = mmsr.tile(x.detach(), 8, 3)[1]
    sr = random_image((2 * grid.num_tiles, 3, 16, 16), device=device, seed=8).requires_grad_()
    op, args = {
        "vsp": (torch.ops.mmsr.vsp.default, (x,)),
        "tvat": (torch.ops.mmsr.tvat.default, (x, 0.01)),
        "tile": (torch.ops.mmsr.tile.default, (x, 8, 3)),
        "stitch": (torch.ops.mmsr.stitch.default, (sr, 19, 23, 8, 3, 2, "cosine")),
    }[name]
    torch.library.opcheck(op, args)


def test_classify_has_no_gradient():
    scores = torch.rand(5, requires_grad=True)
    classes = mmsr.classify(scores, [0.5])
    assert classes.dtype == torch.int64 and not classes.requires_grad
