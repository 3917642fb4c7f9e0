"""The proof that the denoiser lesson's parts are diffusers': timestep embeddings bit for bit against
``get_timestep_embedding``, the time MLP, ResBlock, attention, down- and upsampling against diffusers'
blocks with copied weights (outputs and gradients, float32 and float64); then the models' shapes, parameter
counts by formula, zero-initialised outputs, gradients reaching every parameter, class conditioning,
errors, figures and challenges."""

from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

from torchenstein.diffusion.denoiser import (
    AttentionBlock,
    Conditioning,
    Downsample,
    MLPDenoiser,
    ResBlock,
    TimestepEmbedding,
    UNet,
    Upsample,
    check_scale_shift_conditioning,
    check_unet_parameter_count,
    mlp_denoiser_parameter_count,
    plot_timestep_embedding,
    plot_unet_shapes,
    resblock_parameter_count,
    scale_shift_conditioning,
    shape_trace,
    timestep_embedding,
    unet_parameter_count,
)
from torchenstein.nn.positional import interleaved_to_concatenated, sinusoidal_positions
from torchenstein.transformers.attention import scaled_dot_product_attention


@pytest.fixture(scope="module")
def diffusers_blocks():
    """diffusers' building blocks, imported once (diffusers is a test-only reference)."""
    pytest.importorskip("diffusers")
    from diffusers.models import embeddings
    from diffusers.models.attention_processor import Attention
    from diffusers.models.downsampling import Downsample2D
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.upsampling import Upsample2D

    return {"get_timestep_embedding": embeddings.get_timestep_embedding,
            "TimestepEmbedding": embeddings.TimestepEmbedding, "Attention": Attention,
            "ResnetBlock2D": ResnetBlock2D, "Downsample2D": Downsample2D, "Upsample2D": Upsample2D}


def _randn(*shape, seed=0, dtype=torch.float32, requires_grad=False):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)
    return x.requires_grad_(requires_grad)


def _randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter random values (GroupNorm's ones and zeros would hide a swapped weight and bias)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=generator, dtype=torch.float64))
    return module


# ---- timestep embeddings -------------------------------------------------------------------------

TIMESTEPS = [
    torch.tensor([0, 1, 2, 10, 250, 500, 998, 999]),
    torch.tensor([0, 999, 37], dtype=torch.int32),
    torch.tensor([0.0, 0.5, 12.25, 999.75]),
    torch.tensor([3.0, 1e4, 0.125], dtype=torch.float64),
    torch.tensor([], dtype=torch.int64),
]
SETTINGS = [
    {},
    {"flip_sin_to_cos": True, "downscale_freq_shift": 0},
    {"flip_sin_to_cos": True, "downscale_freq_shift": 1},
    {"downscale_freq_shift": 0.5, "scale": 1000},
    {"max_period": 100, "scale": 0.5},
    {"flip_sin_to_cos": True, "downscale_freq_shift": 0, "max_period": 10000, "scale": 1},
]


@pytest.mark.parametrize("embedding_dim", [1, 3, 4, 16, 33, 64, 129])
@pytest.mark.parametrize("settings", SETTINGS)
def test_timestep_embedding_equals_diffusers_bit_for_bit(diffusers_blocks, embedding_dim, settings):
    if embedding_dim // 2 == settings.get("downscale_freq_shift", 1) and embedding_dim // 2 > 0:
        pytest.skip("a shift equal to D // 2 divides by zero; pinned below")
    for timesteps in TIMESTEPS:
        ours = timestep_embedding(timesteps, embedding_dim, **settings)
        theirs = diffusers_blocks["get_timestep_embedding"](timesteps, embedding_dim, **settings)
        assert ours.dtype == theirs.dtype == torch.float32
        assert torch.equal(ours, theirs), (embedding_dim, settings, timesteps.dtype)


def test_shift_equal_to_half_width_refused_where_diffusers_gives_nan(diffusers_blocks):
    t = torch.tensor([0, 5, 999])
    theirs = diffusers_blocks["get_timestep_embedding"](t, 2, downscale_freq_shift=1)
    assert theirs.isnan().any()  # 0 / 0 in the exponent
    with pytest.raises(ValueError, match=r"downscale_freq_shift=1 equals embedding_dim // 2 = 1"):
        timestep_embedding(t, 2, downscale_freq_shift=1)
    assert torch.isfinite(timestep_embedding(t, 2, downscale_freq_shift=0)).all()


def test_timestep_embedding_is_the_positional_table_with_transformer_frequencies():
    """With shift 0 it is the positional lesson's concatenated table, within float32 angle rounding."""
    for dim in (8, 32, 128):
        ours = timestep_embedding(torch.arange(1000), dim, downscale_freq_shift=0)
        table = interleaved_to_concatenated(sinusoidal_positions(1000, dim))
        torch.testing.assert_close(ours, table, rtol=0, atol=1e-4)
        flipped = timestep_embedding(torch.arange(1000), dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        torch.testing.assert_close(flipped, torch.cat([table[:, dim // 2:], table[:, :dim // 2]], dim=1),
                                   rtol=0, atol=1e-4)


def test_timestep_embedding_errors():
    with pytest.raises(ValueError, match=r"timesteps must be a 1-D tensor of shape \(B,\), got shape \(2, 1\)"):
        timestep_embedding(torch.zeros(2, 1), 8)
    with pytest.raises(TypeError, match="timesteps must be a real tensor"):
        timestep_embedding([1, 2], 8)
    with pytest.raises(TypeError, match="timesteps must be a real tensor"):
        timestep_embedding(torch.tensor([True]), 8)
    with pytest.raises(ValueError, match="embedding_dim must be a positive int, got 0"):
        timestep_embedding(torch.tensor([1]), 0)
    with pytest.raises(ValueError, match="max_period must be a positive finite number, got -1"):
        timestep_embedding(torch.tensor([1]), 8, max_period=-1)
    with pytest.raises(ValueError, match="scale must be a finite number, got nan"):
        timestep_embedding(torch.tensor([1]), 8, scale=float("nan"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_timestep_mlp_equals_diffusers(diffusers_blocks, dtype):
    ours = _randomise(TimestepEmbedding(16, 64)).to(dtype)
    theirs = diffusers_blocks["TimestepEmbedding"](16, 64).to(dtype)
    theirs.load_state_dict(ours.state_dict())
    x = _randn(5, 16, dtype=dtype)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


# ---- blocks against diffusers ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("in_channels", "out_channels", "groups", "eps"),
                         [(16, 16, 8, 1e-5), (16, 32, 8, 1e-6), (48, 16, 4, 1e-5), (8, 8, 1, 1e-3)])
def test_resblock_equals_resnetblock2d(diffusers_blocks, dtype, in_channels, out_channels, groups, eps):
    ours = _randomise(ResBlock(in_channels, out_channels, 24, groups=groups, eps=eps), seed=1).to(dtype)
    theirs = diffusers_blocks["ResnetBlock2D"](in_channels=in_channels, out_channels=out_channels,
                                               temb_channels=24, groups=groups, eps=eps).to(dtype)
    theirs.load_state_dict(ours.state_dict())  # the same names: strict loading proves it
    x, temb = _randn(3, in_channels, 4, 4, dtype=dtype, requires_grad=True), _randn(3, 24, seed=2, dtype=dtype, requires_grad=True)
    out_ours, out_theirs = ours(x, temb), theirs(x, temb)
    torch.testing.assert_close(out_ours, out_theirs)
    grad = _randn(*out_ours.shape, seed=3, dtype=dtype)
    ours_grads = torch.autograd.grad(out_ours, [x, temb, *ours.parameters()], grad)
    theirs_grads = torch.autograd.grad(out_theirs, [x, temb, *theirs.parameters()], grad)
    for a, b in zip(ours_grads, theirs_grads, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("channels", "heads", "size"), [(32, 4, 2), (32, 1, 4), (16, 2, 2), (64, 4, 4)])
def test_attention_block_equals_diffusers_attention(diffusers_blocks, dtype, channels, heads, size):
    ours = _randomise(AttentionBlock(channels, heads=heads, groups=8), seed=4).to(dtype)
    theirs = diffusers_blocks["Attention"](
        channels, heads=heads, dim_head=channels // heads, rescale_output_factor=1.0, eps=1e-5,
        norm_num_groups=8, residual_connection=True, bias=True, upcast_softmax=True,
        _from_deprecated_attn_block=True,
    ).to(dtype)
    state = {k.replace("to_out.", "to_out.0."): v for k, v in ours.state_dict().items()}
    theirs.load_state_dict(state)
    x = _randn(2, channels, size, size, seed=5, dtype=dtype, requires_grad=True)
    out_ours, out_theirs = ours(x), theirs(x)
    torch.testing.assert_close(out_ours, out_theirs)
    (g_ours,), (g_theirs,) = torch.autograd.grad(out_ours.sum(), [x]), torch.autograd.grad(out_theirs.sum(), [x])
    torch.testing.assert_close(g_ours, g_theirs)


def test_attention_block_uses_the_course_attention(monkeypatch):
    """The block's attention is the course's own: replace it and the output changes."""
    import torchenstein.diffusion.denoiser as lesson

    block, x = _randomise(AttentionBlock(16, heads=2)), _randn(1, 16, 2, 2)
    before = block(x)
    calls = []
    monkeypatch.setattr(lesson, "scaled_dot_product_attention",
                        lambda q, k, v: calls.append(q.shape) or scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(block(x), before)
    assert calls == [torch.Size([1, 2, 4, 8])]  # (B, heads, HW, C / heads)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_down_and_upsample_equal_diffusers(diffusers_blocks, dtype):
    x = _randn(2, 8, 6, 6, seed=6, dtype=dtype)
    down = _randomise(Downsample(8), 7).to(dtype)
    their_down = diffusers_blocks["Downsample2D"](8, use_conv=True, padding=1).to(dtype)
    # diffusers keeps its convolution under two names, `conv` and the older `Conv2d_0`: one tensor, two keys.
    state = down.state_dict()
    their_down.load_state_dict({**state, **{k.replace("conv.", "Conv2d_0."): v for k, v in state.items()}})
    torch.testing.assert_close(down(x), their_down(x))
    assert down(x).shape == (2, 8, 3, 3)
    up = _randomise(Upsample(8), 8).to(dtype)
    their_up = diffusers_blocks["Upsample2D"](8, use_conv=True).to(dtype)
    their_up.load_state_dict(up.state_dict())
    torch.testing.assert_close(up(x), their_up(x))
    assert up(x).shape == (2, 8, 12, 12)


# ---- the models ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("data_dim", "hidden_dim", "num_layers", "num_classes"),
                         [(2, 128, 3, None), (2, 64, 1, 3), (5, 16, 4, None), (1, 8, 2, 1)])
def test_mlp_parameter_count_formula(data_dim, hidden_dim, num_layers, num_classes):
    model = MLPDenoiser(data_dim, hidden_dim, num_layers, num_classes)
    assert sum(p.numel() for p in model.parameters()) == mlp_denoiser_parameter_count(
        data_dim, hidden_dim, num_layers, num_classes)


@pytest.mark.parametrize(("a", "b", "e"), [(16, 16, 64), (16, 32, 64), (64, 32, 128), (3, 5, 1), (1, 1, 7)])
def test_resblock_parameter_count_formula(a, b, e):
    groups = math.gcd(a, b)
    assert sum(p.numel() for p in ResBlock(a, b, e, groups=groups).parameters()) == resblock_parameter_count(a, b, e)


@pytest.mark.parametrize(("config", "size"), [
    ({}, 8), ({}, 16), ({"num_classes": 10}, 8), ({"block_out_channels": (8, 16), "norm_num_groups": 4}, 6),
    ({"block_out_channels": (16,)}, 5), ({"in_channels": 3, "out_channels": 2, "block_out_channels": (8, 8, 16, 16),
                                          "norm_num_groups": 4, "attention_heads": 2}, 16),
])
def test_unet_shapes_counts_and_zero_output(config, size):
    model = UNet(**config)
    assert sum(p.numel() for p in model.parameters()) == unet_parameter_count(
        config.get("in_channels", 1), config.get("out_channels"), config.get("block_out_channels", (16, 32, 32)),
        config.get("num_classes"))
    c_in = config.get("in_channels", 1)
    x = _randn(3, c_in, size, size)
    out = model(x, torch.tensor([0, 500, 999]))
    assert out.shape == (3, config.get("out_channels", c_in), size, size) and out.dtype == x.dtype
    assert (out == 0).all()  # the zero-initialised conv_out
    trace = shape_trace(model, x, 7)
    assert trace[0] == ("conditioning", (3, 4 * model.conv_in.out_channels))
    assert trace[-1][1] == tuple(out.shape)
    levels = len(config.get("block_out_channels", (16, 32, 32)))
    assert sum(name.startswith("concat skip") for name, _ in trace) == levels
    attention = dict(trace)["mid attention"]
    assert attention[2:] == (size >> (levels - 1), size >> (levels - 1))


def test_default_unet_is_small():
    assert 100_000 <= sum(p.numel() for p in UNet(num_classes=10).parameters()) <= 300_000


def test_shape_trace_lists_every_level_of_the_default():
    trace = shape_trace(UNet(), _randn(2, 1, 8, 8), 500)
    expected = {"conv_in": (2, 16, 8, 8), "down 0": (2, 16, 8, 8), "downsample 0": (2, 16, 4, 4),
                "down 1": (2, 32, 4, 4), "downsample 1": (2, 32, 2, 2), "down 2": (2, 32, 2, 2),
                "mid attention": (2, 32, 2, 2), "concat skip 2": (2, 64, 2, 2), "upsample 2": (2, 32, 4, 4),
                "concat skip 1": (2, 64, 4, 4), "upsample 1": (2, 32, 8, 8), "concat skip 0": (2, 48, 8, 8),
                "up 0": (2, 16, 8, 8), "conv_out": (2, 1, 8, 8)}
    assert {k: v for k, v in trace if k in expected} == expected
    assert len(trace) == 19
    with pytest.raises(TypeError, match="model must be a UNet, got MLPDenoiser"):
        shape_trace(MLPDenoiser(), _randn(2, 2), 0)


@pytest.mark.parametrize("make", [lambda: UNet(num_classes=3), lambda: MLPDenoiser(num_classes=3)],
                         ids=["unet", "mlp"])
def test_gradients_reach_every_parameter(make):
    """Step 1 moves only the zeroed last layer; once it is non-zero, every parameter gets a gradient."""
    model = make()
    is_unet = isinstance(model, UNet)
    x = _randn(8, 1, 8, 8) if is_unet else _randn(8, 2)
    t, labels = torch.arange(0, 800, 100), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])  # 3 is the null class
    last = model.conv_out if is_unet else model.output
    model(x, t, labels).square().mean().backward()
    assert all(p.grad is None or not p.grad.any() for name, p in model.named_parameters()
               if not name.startswith(("conv_out", "output")))
    model.zero_grad(set_to_none=True)
    _randomise(last, seed=9)
    (model(x, t, labels) - _randn(*x.shape, seed=10)).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_first_step_gradient_of_zero_output_layer_is_not_zero():
    model = UNet()
    x, noise = _randn(4, 1, 8, 8), _randn(4, 1, 8, 8, seed=1)
    (model(x, 10) - noise).square().mean().backward()
    assert model.conv_out.weight.grad.abs().sum() > 0
    assert model.conv_in.weight.grad is None or not model.conv_in.weight.grad.any()


def test_the_clock_is_plugged_in():
    for model in (MLPDenoiser(), UNet()):
        last = model.output if isinstance(model, MLPDenoiser) else model.conv_out
        _randomise(last)
        x = _randn(2, 2) if isinstance(model, MLPDenoiser) else _randn(2, 1, 8, 8)
        assert not torch.allclose(model(x, 50), model(x, 900))
        torch.testing.assert_close(model(x, 50), model(x, torch.tensor([50, 50])))


def test_class_labels_and_the_null_class():
    model = UNet(num_classes=4)
    _randomise(model.conv_out)
    x = _randn(2, 1, 8, 8)
    assert model.null_class == 4 and model.conditioning.class_embedding.num_embeddings == 5
    torch.testing.assert_close(model(x, 3), model(x, 3, torch.tensor([4, 4])))  # no labels = null class
    assert not torch.allclose(model(x, 3, torch.tensor([0, 1])), model(x, 3))
    assert MLPDenoiser(num_classes=2).null_class == 2 and MLPDenoiser().null_class is None
    with pytest.raises(ValueError, match=r"class_labels must lie in 0..4 \(4 is the null class\), got values from 0 to 5"):
        model(x, 3, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"class_labels must have shape \(2,\)"):
        model(x, 3, torch.tensor([0]))
    with pytest.raises(TypeError, match="class_labels must be an int64 or int32 tensor"):
        model(x, 3, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="class_labels were given, but the model was built with num_classes=None"):
        UNet()(x, 3, torch.tensor([0, 1]))


def test_conditioning_accepts_ints_floats_and_tensors():
    cond = Conditioning(8, 16)
    torch.testing.assert_close(cond(5, 3), cond(torch.tensor([5, 5, 5]), 3))
    torch.testing.assert_close(cond(5.0, 2), cond(torch.tensor(5), 2))
    assert cond(torch.tensor([0.5, 999.5]), 2).shape == (2, 16)
    with pytest.raises(ValueError, match=r"t must be one timestep or one per sample, shape \(\) or \(3,\), got \(2,\)"):
        cond(torch.tensor([1, 2]), 3)
    with pytest.raises(TypeError, match="t must be a number or a real tensor of timesteps"):
        cond("5", 3)
    with pytest.raises(TypeError, match="t must be a number or a real tensor of timesteps"):
        cond(True, 3)


def test_models_in_float64_and_bfloat16():
    x = _randn(2, 1, 8, 8)
    assert UNet().double()(x.double(), torch.tensor([1, 2])).dtype == torch.float64
    assert UNet(num_classes=2).to(torch.bfloat16)(x.bfloat16(), 3, torch.tensor([0, 2])).dtype == torch.bfloat16
    assert MLPDenoiser(num_classes=2).double()(_randn(3, 2, dtype=torch.float64), 1).dtype == torch.float64


def test_empty_batch():
    assert UNet(num_classes=2)(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.int64)).shape == (0, 1, 8, 8)
    assert MLPDenoiser()(torch.zeros(0, 2), 5).shape == (0, 2)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"norm_num_groups=8 must divide every entry of block_out_channels=\(16, 20, 32\), but not 20"):
        UNet(block_out_channels=(16, 20, 32))
    with pytest.raises(ValueError, match="attention_heads=3 must divide the last channel count 32"):
        UNet(attention_heads=3)
    with pytest.raises(ValueError, match="block_out_channels must be a non-empty sequence of positive ints, got \\(\\)"):
        UNet(block_out_channels=())
    with pytest.raises(ValueError, match="block_out_channels must be a non-empty sequence of positive ints"):
        UNet(block_out_channels=(16, 0))
    with pytest.raises(ValueError, match="num_classes must be a positive int, got 0"):
        UNet(num_classes=0)
    with pytest.raises(ValueError, match=r"x_t's height and width must be divisible by 4 \(the U-Net halves them 2 times\), got 8x10"):
        UNet()(torch.zeros(1, 1, 8, 10), 0)
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, 1, H, W\), got \(1, 3, 8, 8\)"):
        UNet()(torch.zeros(1, 3, 8, 8), 0)
    with pytest.raises(TypeError, match="x_t must be a floating-point tensor"):
        UNet()(torch.zeros(1, 1, 8, 8, dtype=torch.int64), 0)
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, 2\), got \(4,\)"):
        MLPDenoiser()(torch.zeros(4), 0)
    with pytest.raises(ValueError, match="hidden_dim must be a positive int, got 0"):
        MLPDenoiser(hidden_dim=0)
    with pytest.raises(ValueError, match="heads must be a positive int that divides channels=16, got 3"):
        AttentionBlock(16, heads=3)
    with pytest.raises(ValueError, match=r"num_channels \(20\) must be divisible by num_groups \(8\)"):
        ResBlock(20, 20, 8, groups=8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda():
    model = UNet(num_classes=10).cuda()
    x = torch.randn(4, 1, 16, 16, device="cuda")
    out = model(x, torch.tensor([0, 1, 2, 3], device="cuda"), torch.tensor([0, 1, 10, 3], device="cuda"))
    assert out.device.type == "cuda" and out.shape == x.shape
    assert model(x, 5).device.type == "cuda"  # an int timestep lands on the model's device
    emb = timestep_embedding(torch.arange(10, device="cuda"), 16)
    torch.testing.assert_close(emb.cpu(), timestep_embedding(torch.arange(10), 16))
    mlp = MLPDenoiser().cuda()
    assert mlp(torch.randn(3, 2, device="cuda"), torch.tensor([1, 2, 3])).device.type == "cuda"


# ---- figures and challenges ----------------------------------------------------------------------

def test_figures():
    for fig in (plot_timestep_embedding(), plot_unet_shapes()):
        assert isinstance(fig, Figure) and fig.axes


def test_unet_parameter_count_challenge():
    check_unet_parameter_count(unet_parameter_count)

    def forgot_the_null_class(in_channels=1, out_channels=None, block_out_channels=(16, 32, 32), num_classes=None):
        e = 4 * block_out_channels[0]
        extra = 0 if num_classes is None else -e
        return unet_parameter_count(in_channels, out_channels, block_out_channels, num_classes) + extra

    with pytest.raises(AssertionError, match=r"unet_parameter_count\(\*\*\{'num_classes': 10\}\) returned"):
        check_unet_parameter_count(forgot_the_null_class)


def test_scale_shift_challenge(diffusers_blocks):
    check_scale_shift_conditioning(scale_shift_conditioning)

    def scale_without_one(h, temb, norm, time_emb_proj):
        gamma, beta = time_emb_proj(torch.nn.functional.silu(temb))[:, :, None, None].chunk(2, dim=1)
        return norm(h) * gamma + beta

    with pytest.raises(AssertionError, match=r"norm\(h\) \* \(1 \+ gamma\) \+ beta"):
        check_scale_shift_conditioning(scale_without_one)

    # The solution is diffusers' "scale_shift" conditioning: rebuild its ResnetBlock2D from it.
    theirs = _randomise(diffusers_blocks["ResnetBlock2D"](in_channels=8, out_channels=8, temb_channels=6, groups=4,
                                                          eps=1e-5, time_embedding_norm="scale_shift"))
    x, temb = _randn(2, 8, 4, 4), _randn(2, 6, seed=1)
    h = theirs.conv1(nn.functional.silu(theirs.norm1(x)))
    h = nn.functional.silu(scale_shift_conditioning(h, temb, theirs.norm2, theirs.time_emb_proj))
    torch.testing.assert_close(x + theirs.conv2(h), theirs(x, temb))
