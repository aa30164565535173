"""mmsr.classify: class k holds boundaries[k-1] <= score < boundaries[k]."""
from __future__ import annotations

import pytest
import torch

import mmsr
from mmsr import reference


def test_boundaries_are_inclusive_below(device):
    scores = torch.tensor([-1.0, 0.0, 0.0999, 0.1, 0.25, 0.5, 7.0], device=device)
    classes = mmsr.classify(scores, [0.1, 0.5])
    assert classes.tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert classes.dtype == torch.int64 and classes.device == scores.device


@pytest.mark.parametrize("seed", [0, 1, 2], ids=lambda s: f"seed{s}")
@pytest.mark.parametrize("count", [0, 1, 2, 7, 255])
def test_matches_reference(device, seed, count):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(5000, generator=g).to(device)
    boundaries = sorted(set(torch.rand(count, generator=g).tolist()))
    assert torch.equal(mmsr.classify(scores, boundaries), reference.classify(scores, boundaries))


def test_shapes_dtypes_and_nan(device):
    scores = torch.rand(4, 5, device=device, dtype=torch.float16)
    assert mmsr.classify(scores, [0.5]).shape == (4, 5)
    assert mmsr.classify(torch.empty(0, device=device), [0.5]).shape == (0,)
    assert mmsr.classify(torch.tensor([float("nan")], device=device), [0.1, 0.2]).item() == 2
    assert mmsr.classify(torch.tensor([0.3], device=device), torch.tensor([0.1, 0.2])).item() == 2


@pytest.mark.parametrize(
    "boundaries, error, match",
    [
        ([0.5, 0.1], ValueError, "boundaries must be strictly ascending \\(in float32\\), got \\[0.5, 0.1\\]"),
        ([0.1, 0.1], ValueError, "strictly ascending"),
        ([0.1, 0.1 + 1e-12], ValueError, "strictly ascending"),  # one value once rounded to float32
        ([0.1, float("inf")], ValueError, "boundaries\\[1\\] must be a finite number"),
        (["a"], TypeError, "boundaries\\[0\\] must be a number, got str"),
        (["0.05"], TypeError, "boundaries\\[0\\] must be a number, got str"),
        ([True], TypeError, "boundaries\\[0\\] must be a number, got bool"),
        ("0.5", TypeError, "boundaries must be a list or tuple of numbers, got str"),
        ([10**400], ValueError, "boundaries\\[0\\] must be a finite number.*too large"),
        (torch.tensor([[0.1]]), ValueError, "boundaries as a tensor must be 1-D floating point"),
        (list(range(256)), ValueError, "at most 255 values"),
    ],
)
def test_bad_boundaries(boundaries, error, match):
    with pytest.raises(error, match=match):
        mmsr.classify(torch.rand(3), boundaries)


def test_bad_scores():
    with pytest.raises(TypeError, match="scores must be a floating-point tensor, got torch.int64"):
        mmsr.classify(torch.tensor([1, 2]), [0.5])
    with pytest.raises(TypeError, match="scores must be a torch.Tensor, got list"):
        mmsr.classify([0.1], [0.5])
