"""Models: forward/backward on tiny batches, single sensor and fusion; registry; summary figures."""

from __future__ import annotations

import pytest
import torch

from s12ls_utils import models as M

TINY = {
    "unet_prepost": {"widths": (4, 8, 16)},
    "utae": {
        "encoder_widths": (8, 8, 16),
        "decoder_widths": (8, 8, 16),
        "n_head": 4,
        "d_model": 16,
        "d_k": 2,
    },
    "convgru": {"hidden": 6, "stem": 6},
}
CHANNELS = {"prepost": {"s2": 34, "s1asc": 10}, "series": {"s2": 12, "s1asc": 4}}


@pytest.mark.parametrize("sensors", [("s2",), ("s1asc",), ("s1asc", "s2")], ids="+".join)
@pytest.mark.parametrize("name", list(M.MODELS))
def test_forward_backward_tiny_batch(name, sensors):
    torch.manual_seed(0)
    view = M.VIEWS[name]
    ch = {s: CHANNELS[view][s] for s in sensors}
    model = M.build_model(name, ch, **TINY[name])
    assert model.view == view
    inputs, days = M.example_inputs(model, ch, size=32, n_dates=5, batch=2)
    out = model(inputs, days)
    assert out.shape == (2, 1, 32, 32) and out.dtype == torch.float32
    out.float().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # every sensor's encoder receives a gradient (the fusion uses them all)
    for s in sensors:
        enc = model.encoders[s] if hasattr(model, "encoders") else model.stems[s]
        assert any(p.grad.abs().sum() > 0 for p in enc.parameters())


def test_series_models_accept_missing_days_and_other_lengths():
    ch = {"s2": 12}
    for name in ("utae", "convgru"):
        model = M.build_model(name, ch, **TINY[name]).eval()
        x = {"s2": torch.randn(1, 9, 12, 16, 16)}
        assert model(x).shape == (1, 1, 16, 16)


def test_utae_attention_sums_to_one_and_collapse_of_constant_series():
    torch.manual_seed(0)
    ltae = M.LTAE(16, d_model=16, n_head=4, d_k=2, out=8, dropout=0.0)
    out, attn = ltae(torch.randn(10, 7, 16), torch.arange(7.0).expand(10, 7))
    assert out.shape == (10, 8) and attn.shape == (4, 10, 7)
    assert torch.allclose(attn.sum(-1), torch.ones(4, 10))
    # the same features at every date -> the attention-weighted sum returns them unchanged
    feat = torch.randn(2, 1, 8, 6, 6).expand(2, 5, 8, 6, 6)
    a = torch.softmax(torch.randn(4, 2, 5, 3, 3), dim=2)
    col = M._temporal_collapse(feat, a)
    assert torch.allclose(col, feat[:, 0], atol=1e-5)


def test_wrong_inputs_are_clear_errors():
    model = M.build_model("unet_prepost", {"s2": 34}, **TINY["unet_prepost"])
    with pytest.raises(KeyError, match="s2"):
        model({"s1asc": torch.randn(1, 34, 16, 16)})
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        model({"s2": torch.randn(1, 3, 34, 16, 16)})
    with pytest.raises(ValueError, match="model must be 'unet_prepost', 'utae' or 'convgru', not 'resnet'"):
        M.build_model("resnet", {"s2": 3})
    with pytest.raises(ValueError, match="multiples of n_head"):
        M.build_model("utae", {"s2": 12}, encoder_widths=(6, 8, 16), decoder_widths=(8, 8, 16), n_head=4)


def test_default_utae_size_matches_the_published_one():
    model = M.build_model("utae", {"s2": 12})
    n = M.count_parameters(model)
    assert 1.0e6 < n < 1.15e6  # U-TAE ≈ 1.07 M parameters (DESIGN §6)


def test_model_summary_counts_flops():
    ch = {"s2": 34}
    model = M.build_model("unet_prepost", ch, **TINY["unet_prepost"])
    s = M.model_summary(model, ch, size=32)
    assert s["n_params"] == M.count_parameters(model)
    # the first conv alone: 2 * 34 * 4 * 9 * 32 * 32 FLOPs
    assert s["flops_per_sample"] > 2 * 34 * 4 * 9 * 32 * 32
    assert model.training  # the summary restores the mode


@pytest.mark.parametrize("name", ["unet_prepost", "utae", "convgru"])
def test_model_summary_scaled_from_32_pixels_equals_the_full_count(name):
    """The summary counts a 128-pixel patch on a 32-pixel input and scales by 16: exact, because every layer
    of the three models works per pixel. Counted here on the full patch for comparison."""
    from torch.utils.flop_counter import FlopCounterMode

    ch = {"s2": 13} if M.VIEWS[name] == "series" else {"s2": 34}
    model = M.build_model(name, ch, **TINY[name])
    model.eval()
    inputs, days = M.example_inputs(model, ch, 128, 15)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(inputs, days)
    assert M.model_summary(model, ch, size=128)["flops_per_sample"] == fc.get_total_flops()


def test_channels_last_forward_matches():
    torch.manual_seed(0)
    ch = {"s2": 12}
    model = M.build_model("utae", ch, **TINY["utae"]).eval()
    inputs, days = M.example_inputs(model, ch, size=16, n_dates=4, batch=2)
    ref = model(inputs, days)
    M.set_channels_last(model)
    assert model.channels_last
    assert torch.allclose(model(inputs, days), ref, atol=1e-5)


def test_summary_table_lists_every_model_with_its_size():
    """Parameters counted from the built networks themselves; the chosen model gets its sizes."""
    from s12ls_utils.datasets import input_channels

    widths = {"widths": [8, 16, 32, 64]}
    table = M.summary_table("s2", "unet_prepost", widths)
    assert list(table.index) == list(M.MODELS) and table.loc["unet_prepost", "sizes"] == str(widths)
    for name in M.MODELS:
        kwargs = widths if name == "unet_prepost" else {}
        net = M.build_model(name, input_channels("s2", M.VIEWS[name]), **kwargs)
        assert table.loc[name, "parameters"] == sum(p.numel() for p in net.parameters())
        assert table.loc[name, "input"] == M.VIEWS[name] and table.loc[name, "GFLOPs per sample"] > 0
    assert (table.drop(index="unet_prepost")["sizes"] == "published defaults").all()
