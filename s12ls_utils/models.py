"""Baseline architectures for landslide segmentation, written from their published descriptions.

Every model takes ``inputs: dict[sensor, Tensor]`` (and optionally ``days: dict[sensor, Tensor]`` of shape
``(B, T)``, days since the first acquisition) and returns logits ``(B, 1, H, W)``. Several sensors are
**fused**: each sensor has its own encoder, and the features of every resolution level are concatenated
and mixed by a 1×1 convolution before a shared decoder (mid-level feature fusion).

- ``unet_prepost`` (:class:`UNetPrePost`) — a U-Net on pre- and post-event median composites, their
  difference, the DEM and the slope (``view="prepost"`` of :class:`~s12ls_utils.datasets.PatchDataset`,
  ``(B, C, H, W)``): the strong simple baseline, cheap enough for a CPU.
- ``utae`` (:class:`UTAE`) — U-Net with Temporal Attention Encoder (Garnot & Landrieu, ICCV 2021): a
  shared spatial encoder applied to every date, a lightweight temporal attention encoder (L-TAE: a learnt
  master query per head, keys from the features plus a sinusoidal encoding of the acquisition day) at the
  lowest resolution, whose per-head attention masks are upsampled bilinearly and used to collapse the
  time axis of every skip connection (one head per channel group), then a convolutional decoder. Input
  ``(B, T, C, H, W)`` (``view="series"``).
- ``convgru`` (:class:`ConvGRUNet`) — a per-date convolutional stem, a convolutional GRU run over the dates
  at full resolution, and a convolutional segmentation head on the last hidden state (``view="series"``).

:func:`build_model` builds one by name; :func:`model_summary` counts parameters and forward FLOPs per
sample (``torch.utils.flop_counter``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from . import schema

if TYPE_CHECKING:
    import pandas as pd


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------
class ConvBlock(nn.Sequential):
    """Two 3×3 convolutions, each followed by batch norm and ReLU."""

    def __init__(self, cin: int, cout: int, mid: int | None = None):
        mid = mid or cout
        super().__init__(
            nn.Conv2d(cin, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class Fuse(nn.Module):
    """Concatenate per-sensor features of one level and mix them with a 1×1 conv (identity for one)."""

    def __init__(self, n_sensors: int, cin: int, cout: int | None = None):
        super().__init__()
        cout = cout or cin
        self.mix = (
            nn.Identity()
            if n_sensors == 1 and cin == cout
            else nn.Sequential(
                nn.Conv2d(n_sensors * cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
            )
        )

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.mix(feats[0] if len(feats) == 1 else torch.cat(list(feats), dim=1))


class Up(nn.Module):
    """Transposed-conv upsampling ×2, concatenation with the skip, a conv block."""

    def __init__(self, cin: int, cskip: int, cout: int, kernel: int = 2):
        super().__init__()
        pad = (kernel - 2) // 2
        self.up = nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=pad)
        self.conv = ConvBlock(cout + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


def _check_inputs(inputs: Mapping[str, torch.Tensor], sensors: Sequence[str], ndim: int, name: str) -> None:
    missing = [s for s in sensors if s not in inputs]
    if missing:
        raise KeyError(f"{name}: inputs for {missing} missing (got {sorted(inputs)})")
    for s in sensors:
        if inputs[s].dim() != ndim:
            shape = "(B, C, H, W)" if ndim == 4 else "(B, T, C, H, W)"
            raise ValueError(f"{name}: {s} input must be {shape}, got shape {tuple(inputs[s].shape)}")


class _Base(nn.Module):
    #: "prepost" or "series": the dataset view the model reads
    view = "series"
    #: convert 4-D activations to channels_last (set by :func:`set_channels_last`)
    channels_last = False

    def _cl(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


# --------------------------------------------------------------------------------------------------
# U-Net on pre/post composites
# --------------------------------------------------------------------------------------------------
class _UNetEncoder(nn.Module):
    """A conv block, then levels of (downsampling, conv block); returns the features of every level."""

    def __init__(self, cin: int, widths: Sequence[int]):
        super().__init__()
        self.levels = nn.ModuleList([ConvBlock(cin, widths[0])])
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            self.levels.append(nn.Sequential(*self._down(a), ConvBlock(a, b)))

    def _down(self, channels: int) -> list[nn.Module]:
        return [nn.MaxPool2d(2)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for level in self.levels:
            x = level(x)
            out.append(x)
        return out


class UNetPrePost(_Base):
    """U-Net on per-sensor pre/post composites (+ difference, DEM, slope); one encoder per sensor."""

    view = "prepost"

    def __init__(
        self, in_channels: Mapping[str, int], widths: Sequence[int] = (32, 64, 128, 256), dropout: float = 0.0
    ):
        super().__init__()
        self.sensors = tuple(in_channels)
        self.widths = tuple(widths)
        self.encoders = nn.ModuleDict({s: _UNetEncoder(c, widths) for s, c in in_channels.items()})
        self.fuse = nn.ModuleList([Fuse(len(self.sensors), w) for w in widths])
        self.drop = nn.Dropout2d(dropout) if dropout else nn.Identity()
        self.ups = nn.ModuleList(
            [Up(widths[i + 1], widths[i], widths[i]) for i in reversed(range(len(widths) - 1))]
        )
        self.head = nn.Conv2d(widths[0], 1, 1)

    def forward(
        self, inputs: Mapping[str, torch.Tensor], days: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        _check_inputs(inputs, self.sensors, 4, "unet_prepost")
        per = [self.encoders[s](self._cl(inputs[s])) for s in self.sensors]
        feats = [f([p[i] for p in per]) for i, f in enumerate(self.fuse)]
        x = self.drop(feats[-1])
        for up, skip in zip(self.ups, reversed(feats[:-1]), strict=True):
            x = up(x, skip)
        return self.head(x)


# --------------------------------------------------------------------------------------------------
# U-TAE
# --------------------------------------------------------------------------------------------------
def sinusoid_encoding(days: torch.Tensor, dim: int, period: float = 1000.0) -> torch.Tensor:
    """``(B, T)`` days → ``(B, T, dim)`` sine/cosine encoding (as in the Transformer, on days)."""
    i = torch.arange(dim // 2, device=days.device, dtype=torch.float32)
    freq = period ** (-2.0 * i / dim)
    ang = days.float().unsqueeze(-1) * freq
    enc = torch.stack([torch.sin(ang), torch.cos(ang)], dim=-1).flatten(-2)
    return F.pad(enc, (0, dim - enc.shape[-1]))


class LTAE(nn.Module):
    """Lightweight temporal attention encoder over the dates of every pixel.

    Tokens ``(N, T, C)`` → ``(N, out)``; a learnt *master query* per head attends over the T keys (computed
    from the projected features + the day encoding); the values are the projected features split into
    ``n_head`` groups, so each head summarises its own channel group. Returns the output and the
    attention ``(n_head, N, T)``.
    """

    def __init__(
        self,
        cin: int,
        d_model: int = 256,
        n_head: int = 16,
        d_k: int = 4,
        out: int = 128,
        dropout: float = 0.1,
        period: float = 1000.0,
    ):
        super().__init__()
        if d_model % n_head:
            raise ValueError(f"d_model {d_model} must be a multiple of n_head {n_head}")
        self.n_head, self.d_k, self.d_model, self.period = n_head, d_k, d_model, period
        self.in_norm = nn.LayerNorm(cin)
        self.in_proj = nn.Linear(cin, d_model)
        self.key = nn.Linear(d_model, n_head * d_k)
        self.query = nn.Parameter(torch.randn(n_head, d_k) * math.sqrt(2.0 / d_k))
        self.attn_drop = nn.Dropout(dropout)
        self.mlp = nn.Sequential(nn.Linear(d_model, out), nn.LayerNorm(out), nn.ReLU(inplace=True))

    def forward(self, tokens: torch.Tensor, days: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        n, t, _ = tokens.shape
        x = self.in_proj(self.in_norm(tokens))
        if days is not None:
            x = x + sinusoid_encoding(days, self.d_model, self.period).to(x.dtype)
        k = self.key(x).view(n, t, self.n_head, self.d_k)
        score = torch.einsum("nthk,hk->nht", k, self.query.to(k.dtype)) / math.sqrt(self.d_k)
        attn = self.attn_drop(torch.softmax(score.float(), dim=-1).to(x.dtype))
        v = x.view(n, t, self.n_head, self.d_model // self.n_head)
        out = torch.einsum("nht,nthd->nhd", attn, v).reshape(n, self.d_model)
        return self.mlp(out), attn.permute(1, 0, 2)


def _temporal_collapse(feat: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
    """``feat (B, T, C, H, W)``, ``attn (heads, B, T, h, w)`` → ``(B, C, H, W)`` (one head per channel group)."""
    b, t, c, h, w = feat.shape
    heads = attn.shape[0]
    if attn.shape[-2:] != (h, w):
        a = F.interpolate(
            attn.reshape(heads * b, t, *attn.shape[-2:]), size=(h, w), mode="bilinear", align_corners=False
        )
        attn = a.reshape(heads, b, t, h, w)
    g = feat.reshape(b, t, heads, c // heads, h, w)
    return torch.einsum("hbtyx,bthcyx->bhcyx", attn.to(feat.dtype), g).reshape(b, c, h, w)


class _FrameEncoder(_UNetEncoder):
    """Shared spatial encoder applied to every date: a conv block, then strided-conv downsampling levels."""

    def _down(self, channels: int) -> list[nn.Module]:
        return [
            nn.Conv2d(channels, channels, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        ]


class UTAE(_Base):
    """U-Net with temporal attention encoding (see the module docstring); one encoder + L-TAE per sensor."""

    view = "series"

    def __init__(
        self,
        in_channels: Mapping[str, int],
        encoder_widths: Sequence[int] = (64, 64, 64, 128),
        decoder_widths: Sequence[int] = (32, 32, 64, 128),
        n_head: int = 16,
        d_model: int = 256,
        d_k: int = 4,
        dropout: float = 0.1,
        period: float = 1000.0,
    ):
        super().__init__()
        if len(encoder_widths) != len(decoder_widths):
            raise ValueError("encoder_widths and decoder_widths need the same number of levels")
        bad = [w for w in encoder_widths[:-1] if w % n_head]
        if bad:
            raise ValueError(
                f"skip widths {bad} must be multiples of n_head={n_head} (one head per channel group)"
            )
        self.sensors = tuple(in_channels)
        enc, dec = tuple(encoder_widths), tuple(decoder_widths)
        self.encoders = nn.ModuleDict({s: _FrameEncoder(c, enc) for s, c in in_channels.items()})
        self.ltae = nn.ModuleDict(
            {s: LTAE(enc[-1], d_model, n_head, d_k, dec[-1], dropout, period) for s in in_channels}
        )
        n = len(self.sensors)
        self.fuse = nn.ModuleList([Fuse(n, w) for w in enc[:-1]] + [Fuse(n, dec[-1])])
        self.ups = nn.ModuleList(
            [Up(dec[i + 1], enc[i], dec[i], kernel=4) for i in reversed(range(len(enc) - 1))]
        )
        self.head = nn.Sequential(ConvBlock(dec[0], dec[0]), nn.Conv2d(dec[0], 1, 1))

    def _sensor(self, s: str, x: torch.Tensor, days: torch.Tensor | None) -> list[torch.Tensor]:
        b, t, c, h, w = x.shape
        feats = self.encoders[s](self._cl(x.reshape(b * t, c, h, w)))
        deep = feats[-1]
        _, cd, hd, wd = deep.shape
        tokens = deep.reshape(b, t, cd, hd * wd).permute(0, 3, 1, 2).reshape(b * hd * wd, t, cd)
        d = None if days is None else days.repeat_interleave(hd * wd, dim=0)
        out, attn = self.ltae[s](tokens, d)
        out = out.reshape(b, hd, wd, -1).permute(0, 3, 1, 2)
        attn = attn.reshape(-1, b, hd, wd, t).permute(0, 1, 4, 2, 3)  # heads, B, T, h, w
        skips = [_temporal_collapse(f.reshape(b, t, *f.shape[1:]), attn) for f in feats[:-1]]
        return [*skips, self._cl(out.contiguous())]

    def forward(
        self, inputs: Mapping[str, torch.Tensor], days: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        _check_inputs(inputs, self.sensors, 5, "utae")
        per = [self._sensor(s, inputs[s], None if days is None else days.get(s)) for s in self.sensors]
        feats = [f([p[i] for p in per]) for i, f in enumerate(self.fuse)]
        x = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1]), strict=True):
            x = up(x, skip)
        return self.head(x)


# --------------------------------------------------------------------------------------------------
# ConvGRU
# --------------------------------------------------------------------------------------------------
class ConvGRUCell(nn.Module):
    """Convolutional GRU cell: reset/update gates and the candidate state from 3×3 convolutions."""

    def __init__(self, cin: int, hidden: int, kernel: int = 3):
        super().__init__()
        self.hidden = hidden
        self.gates = nn.Conv2d(cin + hidden, 2 * hidden, kernel, padding=kernel // 2)
        self.cand = nn.Conv2d(cin + hidden, hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        r, z = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        c = torch.tanh(self.cand(torch.cat([x, r * h], dim=1)))
        return (1 - z) * h + z * c


class ConvGRUNet(_Base):
    """Per-date conv stem → ConvGRU over time (full resolution) → conv head on the last hidden state."""

    view = "series"

    def __init__(self, in_channels: Mapping[str, int], hidden: int = 32, stem: int = 32, kernel: int = 3):
        super().__init__()
        self.sensors = tuple(in_channels)
        self.stems = nn.ModuleDict({s: ConvBlock(c, stem) for s, c in in_channels.items()})
        self.cells = nn.ModuleDict({s: ConvGRUCell(stem, hidden, kernel) for s in in_channels})
        self.fuse = Fuse(len(self.sensors), hidden)
        self.head = nn.Sequential(ConvBlock(hidden, hidden), nn.Conv2d(hidden, 1, 1))

    def _sensor(self, s: str, x: torch.Tensor) -> torch.Tensor:
        b, t, c, hh, ww = x.shape
        z = self.stems[s](self._cl(x.reshape(b * t, c, hh, ww)))
        z = z.reshape(b, t, *z.shape[1:])
        h = z.new_zeros(b, self.cells[s].hidden, hh, ww)
        h = self._cl(h)
        for i in range(t):
            h = self.cells[s](z[:, i], h)
        return h

    def forward(
        self, inputs: Mapping[str, torch.Tensor], days: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        _check_inputs(inputs, self.sensors, 5, "convgru")
        return self.head(self.fuse([self._sensor(s, inputs[s]) for s in self.sensors]))


# --------------------------------------------------------------------------------------------------
# Registry and summary
# --------------------------------------------------------------------------------------------------
MODELS: dict[str, type[_Base]] = {"unet_prepost": UNetPrePost, "utae": UTAE, "convgru": ConvGRUNet}
#: Dataset view each model reads.
VIEWS: dict[str, str] = {name: cls.view for name, cls in MODELS.items()}


def build_model(name: str, in_channels: Mapping[str, int], **kwargs) -> nn.Module:
    """A model by name (``unet_prepost``, ``utae``, ``convgru``) for these per-sensor input channels."""
    schema.check_choice("model", name, MODELS)
    if not in_channels:
        raise ValueError("in_channels is empty: give the input channels of at least one sensor")
    return MODELS[name](dict(in_channels), **kwargs)


def set_channels_last(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Store weights and 4-D activations channels-last (faster convolutions on tensor cores)."""
    if enabled:
        model.to(memory_format=torch.channels_last)
    for m in model.modules():
        if isinstance(m, _Base):
            m.channels_last = enabled
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def example_inputs(
    model: nn.Module, in_channels: Mapping[str, int], size: int = 128, n_dates: int = 15, batch: int = 1
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Random inputs of the right shapes for ``model`` (and days 0, 5, 10, …)."""
    dev = next(model.parameters()).device
    series = getattr(model, "view", "series") == "series"
    inputs = {
        s: torch.randn(batch, n_dates, c, size, size, device=dev)
        if series
        else torch.randn(batch, c, size, size, device=dev)
        for s, c in in_channels.items()
    }
    days = {s: (torch.arange(n_dates, device=dev) * 5.0).expand(batch, n_dates) for s in in_channels}
    return inputs, days


def model_summary(
    model: nn.Module, in_channels: Mapping[str, int], size: int = 128, n_dates: int = 15
) -> dict:
    """Parameters and forward FLOPs per sample (``torch.utils.flop_counter``; 1 multiply-add = 2 FLOPs).

    Every layer of the three models works per pixel (convolutions, pooling, upsampling, per-pixel attention
    and recurrence), so the FLOPs grow exactly with the number of pixels: a ``size`` divisible by 32 is
    counted on a 32 × 32 input and scaled by ``(size / 32)²`` (a test checks the equality at 128)."""
    from torch.utils.flop_counter import FlopCounterMode

    counted = 32 if size % 32 == 0 else size
    inputs, days = example_inputs(model, in_channels, counted, n_dates)
    was = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(inputs, days)
    model.train(was)
    flops = int(fc.get_total_flops()) * (size // counted) ** 2
    return {"n_params": count_parameters(model), "flops_per_sample": flops}


def summary_table(
    sensors: str | Sequence[str], chosen: str | None = None, chosen_kwargs: Mapping | None = None
) -> pd.DataFrame:
    """Every model of :data:`MODELS` built for these ``sensors``: its ``input`` view, its ``sizes`` (the
    ``chosen_kwargs`` of the ``chosen`` model, the published defaults for the others), ``parameters`` and
    ``GFLOPs per sample`` (:func:`model_summary`: 128 × 128 pixels, 15 dates). Indexed by model."""
    import pandas as pd

    from .datasets import input_channels

    rows = []
    for name in MODELS:
        channels = input_channels(sensors, VIEWS[name])
        kwargs = dict(chosen_kwargs or {}) if name == chosen else {}
        summary = model_summary(build_model(name, channels, **kwargs), channels)
        rows.append(
            {
                "model": name,
                "input": VIEWS[name],
                "sizes": str(kwargs or "published defaults"),
                "parameters": summary["n_params"],
                "GFLOPs per sample": summary["flops_per_sample"] / 1e9,
            }
        )
    return pd.DataFrame(rows).set_index("model")
