"""Tests for mmsr.models: "X-Y" configs, the SRResNet generator and the SRGAN discriminator."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmsr.models import PAPER_CONFIGS, Discriminator, Generator, ModelConfig, count_parameters


# ---------------------------------------------------------------------------------------------
# ModelConfig


@pytest.mark.parametrize(
    "text, expected",
    [
        ("8-6", (8, 6, 64)),
        ("4-2w32", (4, 2, 32)),
        ("16-8", (16, 8, 64)),
        (" 2-2 ", (2, 2, 64)),
        ("4-2w64", (4, 2, 64)),
        ("1-1w1", (1, 1, 1)),
    ],
)
def test_config_parse(text, expected):
    config = ModelConfig.parse(text)
    assert (config.blocks, config.disc_layers, config.channels) == expected


@pytest.mark.parametrize("text", PAPER_CONFIGS + ("4-2w32", "1-1w1", "32-10w128", "16-8r", "4-2w32r"))
def test_config_name_round_trip(text):
    config = ModelConfig.parse(text)
    assert config.name == text
    assert ModelConfig.parse(config.name) == config


def test_config_name_omits_default_width():
    assert ModelConfig.parse("4-2w64").name == "4-2"
    assert ModelConfig(4, 2, 64) == ModelConfig.parse("4-2")


@pytest.mark.parametrize(
    "bad",
    [
        *("", "8", "8-", "-6", "8x6", "8-6-2", "8-6w", "w32", "a-b", "8 - 6", "-1-2", "4-2W32", "4-2w32x"),
        *("\u0663-2", "0-2", "2-0", "4-2w0", "4-2rr", "4-2r32", "r4-2", "4-2R", "4-2wr"),
    ],
)
def test_config_parse_rejects(bad):
    with pytest.raises(ValueError, match="invalid model config"):
        ModelConfig.parse(bad)


def test_config_parse_rejects_non_str():
    with pytest.raises(ValueError, match="must be a str"):
        ModelConfig.parse(86)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(blocks=0, disc_layers=2), "blocks must be >= 1"),
        (dict(blocks=2, disc_layers=0), "disc_layers must be >= 1"),
        (dict(blocks=2, disc_layers=2, channels=0), "channels must be >= 1"),
        (dict(blocks=2.0, disc_layers=2), "blocks must be an int"),
        (dict(blocks=True, disc_layers=2), "blocks must be an int"),
    ],
)
def test_config_rejects_bad_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**kwargs)


def test_config_is_frozen_and_hashable():
    config = ModelConfig(8, 6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.blocks = 4
    assert len({config, ModelConfig.parse("8-6"), ModelConfig.parse("8-6w32")}) == 2


# ---------------------------------------------------------------------------------------------
# Generator


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("batch, h, w", [(2, 1, 1), (2, 7, 9), (1, 16, 16), (1, 5, 12), (0, 6, 6)])
def test_generator_output_shape(scale, batch, h, w):
    torch.manual_seed(0)
    g = Generator(scale=scale, blocks=1, channels=8).eval()
    y = g(torch.rand(batch, 3, h, w))
    assert y.shape == (batch, 3, h * scale, w * scale)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


def test_generator_other_channel_count():
    g = Generator(scale=2, blocks=1, channels=8, in_channels=1).eval()
    assert g(torch.rand(1, 1, 5, 5)).shape == (1, 1, 10, 10)


@pytest.mark.parametrize("scale, factors", [(2, [2]), (3, [3]), (4, [2, 2])])
def test_generator_pixel_shuffle_stages(scale, factors):
    g = Generator(scale=scale, blocks=1, channels=8)
    assert [m.upscale_factor for m in g.modules() if isinstance(m, nn.PixelShuffle)] == factors


def test_generator_from_config():
    g = Generator.from_config(ModelConfig.parse("3-2w16"), scale=3)
    assert (g.scale, g.blocks, g.channels, g.in_channels) == (3, 3, 16, 3)
    assert len(g.body) == 3


@pytest.mark.parametrize("channels", [8, 16])
def test_generator_parameters_grow_by_one_block(channels):
    c = channels
    # Two 3x3 convs with bias, two BN affine pairs, one per-channel PReLU.
    per_block = 2 * (c * c * 9 + c) + 2 * 2 * c + c
    counts = [count_parameters(Generator(scale=4, blocks=b, channels=c)) for b in (1, 2, 3)]
    assert counts[1] - counts[0] == per_block
    assert counts[2] - counts[1] == per_block


def test_generator_parameters_grow_with_channels():
    counts = [count_parameters(Generator(scale=4, blocks=2, channels=c)) for c in (8, 16, 32)]
    assert counts == sorted(counts) and len(set(counts)) == 3


def test_paper_generator_is_srresnet_sized():
    # SRResNet (16 blocks, width 64) has about 1.55M parameters.
    g = Generator.from_config(ModelConfig.parse("16-8"), scale=4)
    assert 1.5e6 < count_parameters(g) < 1.6e6


def test_generator_init():
    g = Generator(scale=4, blocks=2, channels=8)
    for block in g.body:
        assert torch.all(block.bn2.weight == 0.1)
    # ICNR: all four sub-pixels of a shuffled channel start with the same kernel.
    weight = g.upsample[0][0].weight.detach()
    grouped = weight.view(8, 4, 8, 3, 3)
    assert torch.equal(grouped, grouped[:, :1].expand_as(grouped))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(scale=1), "scale must be 2, 3 or 4"),
        (dict(scale=8), "scale must be 2, 3 or 4"),
        (dict(scale=2.0), "scale must be 2, 3 or 4"),
        (dict(scale=True), "scale must be 2, 3 or 4"),
        (dict(blocks=0), "blocks must be >= 1"),
        (dict(channels=0), "channels must be >= 1"),
        (dict(in_channels=0), "in_channels must be >= 1"),
        (dict(blocks=1.5), "blocks must be an int"),
    ],
)
def test_generator_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Generator(**kwargs)


@pytest.mark.parametrize("shape", [(3, 8, 8), (1, 4, 8, 8), (1, 1, 8, 8)])
def test_generator_rejects_bad_input(shape):
    g = Generator(scale=2, blocks=1, channels=8)
    with pytest.raises(ValueError, match=r"x should be a \[B, 3, h, w\] tensor"):
        g(torch.rand(shape))


def test_generator_trains():
    torch.manual_seed(0)
    g = Generator(scale=2, blocks=1, channels=8).train()
    g(torch.rand(2, 3, 8, 8)).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in g.parameters())


def _lr_margin(blocks: int) -> int:
    # The documented LR receptive radius: 9x9 head (4) + 2 per block + trunk conv (1) + first
    # upsample conv (1) + later stages and the 9x9 tail (together <= 2 LR pixels at scale >= 2).
    return 4 + 2 * blocks + 1 + 1 + 2


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_generator_is_translation_equivariant_away_from_borders(scale):
    # Tiled inference relies on this: a tile's output equals the whole image's output wherever
    # the tile's zero padding is out of reach. BN must be in eval mode (batch statistics are global).
    torch.manual_seed(scale)
    blocks, h, w, dy, dx = 2, 36, 40, 3, 5
    g = Generator(scale=scale, blocks=blocks, channels=8).eval()
    x = torch.rand(1, 3, h, w)
    m = _lr_margin(blocks)
    with torch.no_grad():
        whole = g(x)[:, :, (dy + m) * scale : (h - m) * scale, (dx + m) * scale : (w - m) * scale]
        tile = g(x[:, :, dy:, dx:])[:, :, m * scale : (h - dy - m) * scale, m * scale : (w - dx - m) * scale]
    assert whole.numel() > 0
    torch.testing.assert_close(tile, whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_generator_maps_constant_image_to_constant_interior(scale):
    torch.manual_seed(0)
    blocks = 1
    g = Generator(scale=scale, blocks=blocks, channels=8).eval()
    with torch.no_grad():
        y = g(torch.full((1, 3, 32, 32), 0.5))
    inner = _lr_margin(blocks) * scale
    interior = y[:, :, inner:-inner, inner:-inner]
    assert interior.numel() > 0
    torch.testing.assert_close(interior, interior[:, :, :1, :1].expand_as(interior), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Discriminator


@pytest.mark.parametrize("crop", [64, 96, 128])
@pytest.mark.parametrize("layers", [1, 2, 6, 8])
def test_discriminator_returns_one_logit_per_image(crop, layers):
    torch.manual_seed(0)
    d = Discriminator(layers=layers, base_channels=8)
    logits = d(torch.rand(2, 3, crop, crop))
    assert logits.shape == (2,)
    assert torch.isfinite(logits).all()


def test_discriminator_rectangular_and_empty_batch():
    d = Discriminator(layers=4, base_channels=8).eval()
    assert d(torch.rand(1, 3, 64, 96)).shape == (1,)
    assert d(torch.rand(0, 3, 64, 64)).shape == (0,)


def test_discriminator_matches_srgan_layout():
    d = Discriminator()
    convs = [m for m in d.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]
    assert isinstance(d.features[1], nn.LeakyReLU)  # no BN after the first conv
    assert sum(isinstance(m, nn.BatchNorm2d) for m in d.features) == 7
    # On SRGAN's 96x96 crops the maps are already 6x6, so the adaptive pool is the identity.
    assert d.features(torch.rand(1, 3, 96, 96)).shape == (1, 512, 6, 6)
    assert d.classifier[1].in_features == 512 * 6 * 6
    assert d.classifier[1].out_features == 1024


def test_discriminator_width_caps_at_eight_times_base():
    d = Discriminator(layers=11, base_channels=8)
    widths = [m.out_channels for m in d.features if isinstance(m, nn.Conv2d)]
    assert widths == [8, 8, 16, 16, 32, 32, 64, 64, 64, 64, 64]


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_discriminator_from_config(name):
    config = ModelConfig.parse(name)
    d = Discriminator.from_config(config)
    assert d.layers == config.disc_layers
    assert sum(isinstance(m, nn.Conv2d) for m in d.features) == config.disc_layers


def test_discriminator_trains():
    torch.manual_seed(0)
    d = Discriminator(layers=4, base_channels=8).train()
    logits = d(torch.rand(2, 3, 64, 64))
    nn.functional.binary_cross_entropy_with_logits(logits, torch.ones(2)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in d.parameters())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(layers=0), "layers must be >= 1"),
        (dict(in_channels=0), "in_channels must be >= 1"),
        (dict(base_channels=0), "base_channels must be >= 1"),
        (dict(layers=2.0), "layers must be an int"),
    ],
)
def test_discriminator_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Discriminator(**kwargs)


def test_discriminator_rejects_bad_input():
    d = Discriminator(layers=2, base_channels=8)
    with pytest.raises(ValueError, match=r"x should be a \[B, 3, H, W\] tensor"):
        d(torch.rand(3, 64, 64))


# ---------------------------------------------------------------------------------------------
# count_parameters


def test_count_parameters_counts_frozen_parameters_not_buffers():
    module = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    module.requires_grad_(False)
    assert count_parameters(module) == 3 * 2 + 2 + 2 + 2


# ---- the input skip ("r" configs) ---------------------------------------------------------------


def test_input_skip_config_parses_and_builds_a_residual_generator():
    config = ModelConfig.parse("4-2w16r")
    assert (config.blocks, config.disc_layers, config.channels, config.input_skip) == (4, 2, 16, True)
    assert not ModelConfig.parse("4-2w16").input_skip
    g = Generator.from_config(config, scale=3)
    assert g.input_skip and (g.blocks, g.channels, g.scale) == (4, 16, 3)
    with pytest.raises(ValueError, match="input_skip must be a bool"):
        Generator(scale=2, blocks=1, channels=8, input_skip=1)
    with pytest.raises(ValueError, match="input_skip must be a bool"):
        ModelConfig(2, 2, input_skip="yes")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_a_fresh_residual_generator_is_bicubic_and_learns_a_residual(scale):
    torch.manual_seed(0)
    g = Generator(scale=scale, blocks=2, channels=8, input_skip=True)
    x = torch.rand(2, 3, 9, 11)
    bicubic = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    with torch.no_grad():
        assert torch.equal(g.eval()(x), bicubic)
    # One optimiser step on a target that is not bicubic moves the output away from it.
    g.train()
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    loss = F.l1_loss(g(x), bicubic + 0.1)
    loss.backward()
    assert g.tail.weight.grad.abs().sum() > 0
    opt.step()
    with torch.no_grad():
        assert (g.eval()(x) - bicubic).abs().mean() > 1e-3
    # Without the skip the same generator does not start at bicubic.
    torch.manual_seed(0)
    plain = Generator(scale=scale, blocks=2, channels=8).eval()
    with torch.no_grad():
        assert (plain(x) - bicubic).abs().mean() > 0.05


@pytest.mark.parametrize("text, match", [("999999-2", "blocks must be <= 256"), ("4-65", "disc_layers must be <= 64"),
                                         ("4-2w2048", "channels must be <= 1024")])
def test_configs_are_bounded(text, match):
    # A bundle header is data: a config must not make load_bundle build millions of layers.
    with pytest.raises(ValueError, match=match):
        ModelConfig.parse(text)


def test_conv_cost_probe_leaves_the_model_alone_and_takes_its_channels():
    from mmsr.inference import conv_macs_per_pixel

    g = Generator(scale=2, blocks=1, channels=4).train()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    conv_macs_per_pixel(g)
    assert g.training and all(torch.equal(before[k], v) for k, v in g.state_dict().items())
    grey = Generator(scale=2, blocks=1, channels=4, in_channels=1).eval()
    assert conv_macs_per_pixel(grey) > 0


def test_fused_tail_keeps_a_frozen_model_frozen():
    from mmsr.inference import fuse_subpixel_tail

    g = fuse_subpixel_tail(Generator(scale=2, blocks=1, channels=8).eval().requires_grad_(False))
    assert not any(p.requires_grad for p in g.parameters())
