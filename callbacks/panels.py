"""One clinician-readable panel per seizure event, for ECAMs and onset maps alike.

A panel puts what the model saw next to what the clinician sees: the bipolar EEG traces on top,
the channel x time activation map under them on the same time axis (with the seizure onset
zone channels marked), the temporal attention / seizure probability when the model gives one,
scalp topomaps of the activation at a few instants after the annotated onset, and, for
LightSeizureNet ECAMs (Qiu et al., IEEE JBHI 2023), the dominant frequency of each channel's
activated signal. SZLoc onset maps (Craley et al., MIDL 2022) use the same panel.

Figures are built on :class:`matplotlib.figure.Figure` with an Agg canvas, never through the
pyplot registry, so rendering in a training loop leaks no figures and needs no display.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec, GridSpecFromSubplotSpec
from matplotlib.ticker import MaxNLocator

from eeg.head import project_electrodes, scalp_layout
from eeg.montage import MontageError, canonical_label, expand_soz
from lightning_modules.activation_maps import ActivationMaps

#: Instants (s after the annotated onset) shown as topomaps, plus the activation peak.
DEFAULT_TOPOMAP_TIMES_S: tuple[float, ...] = (0.0, 5.0, 15.0, 30.0)

#: Sensitivities an EEG reader expects (uV between neighbouring traces).
_NICE_UV = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)

#: Traces are clipped at this many channel spacings, as MNE's raw browser does (clipping=1.5),
#: so a high-amplitude seizure does not paint over its neighbours.
_CLIP = 1.5

#: Trace points kept per channel, in min/max pairs: about the trace axis width in pixels.
_DISPLAY_COLUMNS = 1500

_KIND_NAMES = {"ecam": "ECAM", "onset_map": "onset map"}
_SOZ_COLOR = "#c00000"


@dataclass(frozen=True)
class Localization:
    """The model's localization of one event: the channel with the highest activation.

    Attributes
    ----------
    index : int
        Row of the top channel in the activation map.
    channel : str
        Its name.
    score : float
        Its activation averaged over the scored interval (attention-weighted for SZLoc).
    """

    index: int
    channel: str
    score: float


def top_channel(maps: ActivationMaps, start_s: float | None = None,
                stop_s: float | None = None) -> Localization:
    """Top channel of ``maps.channel_scores(start_s, stop_s)`` (times relative to the segment
    start). Ties go to the first channel in montage order."""
    scores = np.asarray(maps.channel_scores(start_s, stop_s), dtype=float)
    if scores.size == 0 or not np.isfinite(scores).any():
        raise ValueError("activation map has no finite channel score to localize with")
    i = int(np.nanargmax(np.where(np.isfinite(scores), scores, -np.inf)))
    return Localization(i, maps.channels[i], float(scores[i]))


def render_activation_panel(
    signal: np.ndarray,
    sfreq: float,
    channels,
    maps: ActivationMaps,
    *,
    segment_start_s: float = 0.0,
    onset_s: float | None = None,
    offset_s: float | None = None,
    soz_channels=None,
    soz: tuple[str, ...] | None = None,
    patient: str = "",
    recording_id: str = "",
    topomap_times_s: tuple[float, ...] = DEFAULT_TOPOMAP_TIMES_S,
    uv_per_channel: float | None = None,
    figsize: tuple[float, float] = (14.0, 10.0),
    dpi: int = 100,
) -> Figure:
    """Render one seizure event: EEG, activation heatmap, attention, topomaps, frequencies.

    Parameters
    ----------
    signal : np.ndarray, shape (n_chans, n_times)
        The EEG segment in microvolts, in montage order (bipolar channels).
    sfreq : float
        Sampling rate of ``signal`` in Hz.
    channels : sequence of str
        Channel names of ``signal`` rows (e.g. the 18 double-banana derivations).
    maps : ActivationMaps
        ECAM (LightSeizureNet) or onset map (SZLoc) of the same segment; ``maps.times_s`` are
        relative to the segment start. Rows are matched to ``channels`` by name.
    segment_start_s : float
        Time of ``signal[:, 0]`` in the recording (s).
    onset_s, offset_s : float or None
        Annotated seizure onset / offset in the recording (s). Times are drawn relative to the
        onset; without one, relative to the recording start.
    soz_channels : array-like of bool, shape (n_chans,), or None
        Channels in the seizure onset zone (see :func:`eeg.montage.soz_channel_mask`):
        their names are drawn bold red and they are circled on the topomaps.
    soz : tuple of str or None
        The onset zone as written (electrodes or region names), for the caption; its electrodes
        are also marked on the topomaps.
    patient, recording_id : str
        For the caption.
    topomap_times_s : tuple of float
        Instants after the onset (s) drawn as topomaps; the activation peak is added, and
        instants outside the map are left out.
    uv_per_channel : float or None
        Spacing between traces in uV (the scale bar); by default a round value about three
        times the median channel standard deviation.
    figsize, dpi
        Figure size; the default 14 x 10 in at 100 dpi reads on a laptop screen.

    Returns
    -------
    matplotlib.figure.Figure
        Attached to an Agg canvas; save it with :func:`save_panel`.
    """
    channels = tuple(channels)
    where = f"activation panel for {recording_id or 'a recording'}"
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim != 2 or signal.shape[0] != len(channels):
        raise ValueError(f"{where}: signal has shape {signal.shape}, expected "
                         f"({len(channels)} channels, n_times)")
    if signal.shape[1] < 2:
        raise ValueError(f"{where}: signal has {signal.shape[1]} samples; need at least 2")
    if not (sfreq > 0):
        raise ValueError(f"{where}: sfreq must be positive, got {sfreq}")
    maps = _align_maps(maps, channels, where)
    soz_mask = _soz_mask(soz_channels, len(channels), where)

    # Every time-aligned axis is drawn relative to the annotated onset (the clinician's anchor).
    ref_s = onset_s if onset_s is not None else 0.0
    t_sig = segment_start_s + np.arange(signal.shape[1]) / sfreq - ref_s
    t_map = segment_start_s + np.asarray(maps.times_s, dtype=float) - ref_s
    onset_rel = None if onset_s is None else 0.0
    offset_rel = None if offset_s is None else offset_s - ref_s
    cells = _edges(t_map)
    xlim = (min(t_sig[0], cells[0]), max(t_sig[-1] + 1.0 / sfreq, cells[-1]))

    # The localization the callback records: scored from the onset to the end of the segment.
    loc = top_channel(maps, None if onset_s is None else onset_s - segment_start_s, None)

    norm, cmap, clipped = _color_norm(maps.activity)
    has_strip = maps.attention is not None or maps.probability is not None
    has_freq = maps.freq_hz is not None
    has_track = maps.freq_track_hz is not None and bool(np.isfinite(maps.freq_track_hz).any())

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    outer = GridSpec(2, 1, figure=fig, height_ratios=[7.0, 2.6], hspace=0.2,
                     left=0.085, right=0.945, top=0.915, bottom=0.035)
    rows = [3.5, 3.0] + ([0.85] if has_strip else []) + ([0.85] if has_track else [])
    tgrid = GridSpecFromSubplotSpec(len(rows), 3, subplot_spec=outer[0], height_ratios=rows,
                                    width_ratios=[1.0, 0.075 if has_freq else 0.001, 0.012],
                                    hspace=0.08, wspace=0.03)

    ax_eeg = fig.add_subplot(tgrid[0, 0])
    ax_map = fig.add_subplot(tgrid[1, 0], sharex=ax_eeg)
    _draw_traces(ax_eeg, signal, t_sig, channels, soz_mask, uv_per_channel, xlim)
    image = _draw_heatmap(ax_map, maps.activity, t_map, channels, soz_mask, norm, cmap)
    ax_cb = fig.add_subplot(tgrid[1, 2])
    cb = fig.colorbar(image, cax=ax_cb, extend="max" if clipped else "neither")
    cb.set_label(_KIND_NAMES.get(maps.kind, maps.kind), fontsize=8)
    cb.ax.tick_params(labelsize=7)
    ax_freq = fig.add_subplot(tgrid[1, 1], sharey=ax_map)
    if has_freq:
        _draw_freq(ax_freq, np.asarray(maps.freq_hz, dtype=float), soz_mask)
    else:
        ax_freq.set_axis_off()
    time_axes = [ax_eeg, ax_map]
    if has_strip:
        ax_strip = fig.add_subplot(tgrid[2, 0], sharex=ax_eeg)
        _draw_strip(ax_strip, t_map, maps.attention, maps.probability)
        time_axes.append(ax_strip)
    if has_track:
        ax_track = fig.add_subplot(tgrid[len(rows) - 1, 0], sharex=ax_eeg)
        t_track = segment_start_s + np.asarray(maps.freq_times_s, dtype=float) - ref_s
        _draw_track(ax_track, t_track, np.asarray(maps.freq_track_hz, dtype=float), loc.index,
                    channels[loc.index], soz_mask)
        time_axes.append(ax_track)
    for ax in time_axes:
        _mark_event(ax, onset_rel, offset_rel, label=ax is ax_eeg, xlim=xlim)
        ax.set_xlim(*xlim)
        if ax is not time_axes[-1]:
            ax.tick_params(labelbottom=False)
    # A tick every 5 or 10 s on a 90 s segment: onset-relative times are read off directly.
    ax_eeg.xaxis.set_major_locator(MaxNLocator(nbins=12, steps=[1, 2, 5, 10]))
    time_axes[-1].set_xlabel("time from annotated onset (s)" if onset_s is not None
                             else "time in recording (s)", fontsize=9)
    # The top channel, where the model localizes the event: an arrow beside its heatmap row.
    ax_map.annotate("", xy=(1.0, loc.index), xycoords=("axes fraction", "data"),
                    xytext=(1.012, loc.index), textcoords=("axes fraction", "data"),
                    arrowprops=dict(arrowstyle="-|>", color="k", lw=1.2))

    _draw_topomaps(fig, outer[1], maps, t_map, soz_mask, soz, norm, cmap,
                   tuple(topomap_times_s) if onset_s is not None else None)

    kind = _KIND_NAMES.get(maps.kind, maps.kind)
    onset_txt = (f"onset {onset_s:.1f} s" if onset_s is not None else "no annotated onset")
    if offset_s is not None:
        onset_txt += f", offset {offset_s:.1f} s"
        if onset_s is not None:
            onset_txt += f" ({offset_s - onset_s:.0f} s long)"
    in_soz = "" if soz_mask is None else (" (SOZ)" if soz_mask[loc.index] else " (not SOZ)")
    parts = [patient, recording_id, kind, onset_txt, f"top channel {loc.channel}{in_soz}"]
    fig.suptitle(" \u00b7 ".join(p for p in parts if p), fontsize=13, fontweight="bold",
                 y=0.985)
    soz_txt = ("SOZ: " + ", ".join(soz)) if soz else ("SOZ: marked" if soz_mask is not None
                                                     else "SOZ: unknown")
    fig.text(0.5, 0.945, f"{soz_txt}  \u00b7  red bold names = SOZ channels  \u00b7  \u25c0 = top "
             f"channel (mean {kind} from onset to end of segment)  \u00b7  EEG: bipolar, "
             "negative up", ha="center", fontsize=9, color="0.25")
    return fig


def save_panel(fig: Figure, path, close: bool = True) -> Path:
    """Write ``fig`` as a PNG (parent folders created) and release its memory.

    Returns the path written. ``close`` clears the figure, since panels are rendered in a loop.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=fig.dpi, format="png", facecolor="white")
    tmp.replace(path)  # a reader (W&B, a browser) never sees a half-written PNG
    if close:
        fig.clf()
    return path


# ---------------------------------------------------------------------------- helpers

def _align_maps(maps: ActivationMaps, channels: tuple[str, ...], where: str) -> ActivationMaps:
    """Reorder the map's rows to the signal's channel order, matching names canonically."""
    activity = np.asarray(maps.activity, dtype=float)
    times = np.asarray(maps.times_s, dtype=float)
    if activity.ndim != 2:
        raise ValueError(f"{where}: activity must be (n_chans, n_steps), got {activity.shape}")
    if times.shape != (activity.shape[1],):
        raise ValueError(f"{where}: times_s has shape {times.shape} but activity has "
                         f"{activity.shape[1]} steps")
    if activity.shape[1] == 0:
        raise ValueError(f"{where}: activation map has no time step")
    if len(maps.channels) != activity.shape[0]:
        raise ValueError(f"{where}: activation map names {len(maps.channels)} channels but has "
                         f"{activity.shape[0]} rows")
    mine = [canonical_label(c) for c in channels]
    theirs = [canonical_label(c) for c in maps.channels]
    if sorted(mine) != sorted(theirs):
        missing = sorted(set(mine) - set(theirs))
        extra = sorted(set(theirs) - set(mine))
        raise ValueError(f"{where}: activation map channels do not match the signal's "
                         f"(missing {missing or 'none'}, extra {extra or 'none'})")
    for name, arr in (("freq_hz", maps.freq_hz),):
        if arr is not None and np.shape(arr) != (activity.shape[0],):
            raise ValueError(f"{where}: {name} has shape {np.shape(arr)}, expected "
                             f"({activity.shape[0]},)")
    for name, arr in (("attention", maps.attention), ("probability", maps.probability)):
        if arr is not None and np.shape(arr) != times.shape:
            raise ValueError(f"{where}: {name} has shape {np.shape(arr)}, expected {times.shape}")
    track = maps.freq_track_hz
    if (track is None) != (maps.freq_times_s is None) or (
            track is not None and np.shape(track) != (activity.shape[0], np.size(maps.freq_times_s))):
        raise ValueError(f"{where}: freq_track_hz {np.shape(track) if track is not None else None} does not "
                         f"match its {np.size(maps.freq_times_s) if maps.freq_times_s is not None else 'missing'} "
                         f"freq_times_s for {activity.shape[0]} channels")
    order = [theirs.index(c) for c in mine]
    return ActivationMaps(
        activity=activity[order], times_s=times, channels=channels,
        freq_hz=None if maps.freq_hz is None else np.asarray(maps.freq_hz, float)[order],
        freq_track_hz=None if track is None else np.asarray(track, float)[order],
        freq_times_s=None if maps.freq_times_s is None else np.asarray(maps.freq_times_s, float),
        attention=None if maps.attention is None else np.asarray(maps.attention, float),
        probability=None if maps.probability is None else np.asarray(maps.probability, float),
        kind=maps.kind)


def _soz_mask(soz_channels, n: int, where: str) -> np.ndarray | None:
    if soz_channels is None:
        return None
    mask = np.asarray(soz_channels).astype(bool).ravel()
    if mask.shape != (n,):
        raise ValueError(f"{where}: soz_channels has {mask.size} entries for {n} channels")
    return mask


def _edges(t: np.ndarray) -> np.ndarray:
    """Cell edges around step centres (one step wide at the ends)."""
    if t.size == 1:
        return np.array([t[0] - 0.5, t[0] + 0.5])
    mid = (t[1:] + t[:-1]) / 2
    return np.concatenate([[t[0] - (mid[0] - t[0])], mid, [t[-1] + (t[-1] - mid[-1])]])


def _nice_uv(signal: np.ndarray) -> float:
    """Round trace spacing (uV) about three median channel standard deviations."""
    sd = float(np.median(np.std(signal, axis=1)))
    target = 3.0 * sd if np.isfinite(sd) and sd > 0 else 100.0
    return float(next((v for v in _NICE_UV if v >= target), _NICE_UV[-1]))


def _color_norm(activity: np.ndarray):
    """One colour scale for heatmap and topomaps: diverging around 0 for signed maps, sequential
    from 0 otherwise; the top 0.5 % is clipped so one hot sample does not wash the rest out."""
    a = activity[np.isfinite(activity)]
    if a.size == 0:
        return Normalize(0, 1), "Reds", False
    top = float(np.percentile(np.abs(a), 99.5))
    if top <= 0:
        top = float(np.abs(a).max()) or 1.0
    clipped = bool(np.abs(a).max() > top * (1 + 1e-9))
    if a.min() < 0:
        return TwoSlopeNorm(vcenter=0.0, vmin=-top, vmax=top), "RdBu_r", clipped
    return Normalize(0.0, top), "Reds", clipped


def _style_channel_ticks(ax, channels, soz_mask, fontsize):
    ax.set_yticks(np.arange(len(channels)))
    ax.set_yticklabels(channels, fontsize=fontsize)
    if soz_mask is not None:
        for lab, s in zip(ax.get_yticklabels(), soz_mask):
            if s:
                lab.set_color(_SOZ_COLOR)
                lab.set_fontweight("bold")


def _draw_traces(ax, signal, t, channels, soz_mask, uv, xlim):
    uv = float(uv) if uv else _nice_uv(signal)
    centred = signal - np.median(signal, axis=1, keepdims=True)
    scaled = np.clip(centred / uv, -_CLIP, _CLIP)
    tt, scaled = _minmax_decimate(t, scaled, _DISPLAY_COLUMNS)
    # EEG convention: negative up, first channel at the top.
    for i in range(len(channels)):
        color = _SOZ_COLOR if soz_mask is not None and soz_mask[i] else "k"
        ax.plot(tt[i], i - scaled[i], color=color, lw=0.45)
    ax.set_ylim(len(channels) - 0.3, -0.7)
    _style_channel_ticks(ax, channels, soz_mask, 8)
    ax.tick_params(axis="x", labelsize=8)
    # Scale bar: one channel spacing, in the right margin beside the first channels.
    x0 = xlim[1] + 0.006 * (xlim[1] - xlim[0])
    ax.plot([x0, x0], [0.0, 1.0], color="k", lw=2, clip_on=False, solid_capstyle="butt")
    ax.text(x0 + 0.004 * (xlim[1] - xlim[0]), 0.5, f"{uv:g} \u00b5V",
            va="center", ha="left", fontsize=8, clip_on=False)


def _minmax_decimate(t: np.ndarray, y: np.ndarray, n_buckets: int):
    """Per channel, keep each bucket's minimum and maximum in time order: the drawn envelope is
    the full-resolution one with ``2 * n_buckets`` points (a 90 s, 256 Hz segment has 23040
    samples for ~1100 pixels). Returns per-channel times and values, shape (n_chans, n_kept).
    """
    n_chans, n = y.shape
    if n <= 4 * n_buckets:
        return np.broadcast_to(t, y.shape), y
    size = n // n_buckets
    m = size * n_buckets
    blocks = y[:, :m].reshape(n_chans, n_buckets, size)
    lo, hi = blocks.argmin(axis=2), blocks.argmax(axis=2)
    base = np.arange(n_buckets) * size
    idx = np.stack([base + np.minimum(lo, hi), base + np.maximum(lo, hi)], axis=2)
    idx = np.concatenate([idx.reshape(n_chans, -1),
                          np.broadcast_to(np.arange(m, n), (n_chans, n - m))], axis=1)
    return t[idx], np.take_along_axis(y, idx, axis=1)


def _draw_heatmap(ax, activity, t, channels, soz_mask, norm, cmap):
    e = _edges(t)
    steps = np.diff(t)
    if steps.size == 0 or np.allclose(steps, steps[0], rtol=1e-3, atol=1e-9):
        # Evenly spaced steps (ECAM at sample rate): an image, fast however many steps.
        image = ax.imshow(activity, aspect="auto", interpolation="nearest", cmap=cmap,
                          norm=norm, extent=(e[0], e[-1], len(channels) - 0.5, -0.5))
    else:
        image = ax.pcolormesh(e, np.arange(len(channels) + 1) - 0.5, activity, cmap=cmap,
                              norm=norm, shading="flat")
        ax.set_ylim(len(channels) - 0.5, -0.5)
    _style_channel_ticks(ax, channels, soz_mask, 8)
    ax.tick_params(axis="x", labelsize=8)
    return image


def _draw_freq(ax, freq, soz_mask):
    """One bar per activated channel; a channel the model did not activate has no frequency and
    gets no bar (a bar at the 1/f low edge would read as delta activity)."""
    y = np.arange(freq.size)
    colors = [_SOZ_COLOR if soz_mask is not None and s else "0.45"
              for s in (soz_mask if soz_mask is not None else [False] * freq.size)]
    ok = np.isfinite(freq)
    f = np.where(ok, freq, 0.0)
    ax.barh(y[ok], f[ok], color=[c for c, k in zip(colors, ok) if k], height=0.7)
    top = max(float(f.max()) if f.size else 1.0, 1.0)
    ax.set_xlim(0, top * 1.6)
    for yi in y[ok]:
        ax.text(f[yi] + top * 0.05, yi, f"{f[yi]:.1f}", va="center", ha="left", fontsize=7)
    ax.tick_params(axis="y", labelleft=False, length=0)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("Hz", fontsize=8)
    ax.set_title("dominant\nfreq.", fontsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _draw_track(ax, t, track, top, top_name, soz_mask):
    """Dominant frequency per second: the top channel's as a line, every other activated
    channel's as faint dots (SOZ channels red), where the model activates them."""
    for i in range(track.shape[0]):
        if i == top:
            continue
        color = _SOZ_COLOR if soz_mask is not None and soz_mask[i] else "0.55"
        ax.plot(t, track[i], ".", ms=2.5, color=color, alpha=0.45)
    ax.plot(t, track[top], "-o", ms=3, lw=1.2, color="k", label=f"top channel {top_name}")
    finite = track[np.isfinite(track)]
    ax.set_ylim(0, max(12.0, float(np.percentile(finite, 98)) * 1.15 if finite.size else 12.0))
    ax.set_ylabel("dominant\nfreq. (Hz)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    ax.grid(True, axis="y", lw=0.3, color="0.85")


def _draw_strip(ax, t, attention, probability):
    handles = []
    if probability is not None:
        handles += ax.plot(t, probability, color="tab:blue", lw=1.2, label="seizure probability")
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("p(seizure)", fontsize=8, color="tab:blue")
        att_ax = ax.twinx() if attention is not None else None
    else:
        att_ax = ax
    if attention is not None:
        handles += att_ax.plot(t, attention, color="tab:orange", lw=1.2, label="attention")
        att_ax.set_ylabel("attention", fontsize=8, color="tab:orange")
        att_ax.tick_params(labelsize=7)
        lo, hi = float(np.nanmin(attention)), float(np.nanmax(attention))
        pad = 0.05 * (hi - lo) if hi > lo else 0.5 * abs(hi) + 1e-6
        att_ax.set_ylim(lo - pad, hi + pad)
    ax.tick_params(labelsize=7)
    ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=False,
              ncol=len(handles))


def _mark_event(ax, onset, offset, label, xlim):
    if onset is not None and offset is not None:
        ax.axvspan(onset, offset, color="gold", alpha=0.12, lw=0)
    # Labels grow away from each other (onset leftwards, offset rightwards) so a short seizure
    # does not print one over the other.
    for x, name, style, ha in ((onset, "onset", "--", "right"), (offset, "offset", ":", "left")):
        if x is None:
            continue
        ax.axvline(x, color=_SOZ_COLOR, ls=style, lw=1.2)
        if label and xlim[0] <= x <= xlim[1]:
            ax.text(x, 1.005, f" annotated {name} ", transform=ax.get_xaxis_transform(),
                    ha=ha, va="bottom", fontsize=8, color=_SOZ_COLOR)


def _topomap_instants(activity, t_map, onset_known, times):
    """(label, time relative to onset) for each topomap: the requested instants inside the map,
    then the activation peak after the onset unless it falls within 2 s of one of them."""
    lo, hi = _edges(t_map)[[0, -1]]
    out = [(("onset" if t == 0 else f"onset {t:+g} s"), float(t)) for t in times
           if onset_known and lo <= t < hi]
    after = t_map >= 0 if onset_known else np.ones_like(t_map, dtype=bool)
    if after.any():
        strength = np.nanmax(np.abs(activity[:, after]), axis=0)
        peak = float(t_map[after][int(np.nanargmax(strength))])
        if all(abs(peak - t) >= 2.0 for _, t in out):
            out.append((f"peak {peak:+.1f} s" if onset_known else f"peak {peak:.1f} s", peak))
    return out


def _values_at(activity, t_map, t, width):
    sel = np.abs(t_map - t) <= width / 2
    if not sel.any():
        sel = np.zeros_like(t_map, dtype=bool)
        sel[int(np.argmin(np.abs(t_map - t)))] = True
    return activity[:, sel].mean(axis=1)


def _draw_topomaps(fig, spec, maps, t_map, soz_mask, soz, norm, cmap, times):
    """Topomaps at ``times`` (s after onset; None without an onset) and at the peak."""
    import mne

    instants = _topomap_instants(maps.activity, t_map, times is not None, times or ())
    try:
        info, sphere = scalp_layout(tuple(maps.channels))
    except MontageError as err:
        ax = fig.add_subplot(spec)
        ax.set_axis_off()
        ax.text(0.5, 0.5, f"no topomap: {err}", ha="center", va="center", fontsize=9)
        return
    n = max(len(instants), 1)
    grid = GridSpecFromSubplotSpec(1, n + 2, subplot_spec=spec,
                                   width_ratios=[1.0] * n + [0.06, max(1.3, 6.0 - n)],
                                   wspace=0.15)
    steps = np.diff(t_map)
    width = max(1.0, float(np.median(steps)) if steps.size else 1.0)
    soz_els = sorted(expand_soz(soz)) if soz else []
    soz_xy = project_electrodes(soz_els, sphere) if soz_els else np.zeros((0, 2))
    mask_params = dict(marker="o", markerfacecolor="none", markeredgecolor=_SOZ_COLOR,
                       markeredgewidth=1.3, markersize=7)
    image = None
    for k, (label, t) in enumerate(instants):
        ax = fig.add_subplot(grid[0, k])
        values = _values_at(maps.activity, t_map, t, width)
        image, _ = mne.viz.plot_topomap(
            values, info, axes=ax, show=False, cmap=cmap, cnorm=norm, sphere=sphere,
            contours=0, sensors=True, mask=soz_mask, mask_params=mask_params, res=32,
            extrapolate="head")
        if len(soz_xy):
            ax.plot(soz_xy[:, 0], soz_xy[:, 1], ls="none", marker="x", color=_SOZ_COLOR,
                    markersize=6, mew=1.6, zorder=20)
        ax.set_title(label, fontsize=9)
    if image is not None:
        cax = fig.add_subplot(grid[0, n])
        cb = fig.colorbar(image, cax=cax)
        cb.ax.tick_params(labelsize=7)
        key = fig.add_subplot(grid[0, n + 1])
        key.set_axis_off()
        key.text(0.12, 0.5, "dots: bipolar channels at\nthe midpoint of their\ntwo electrodes\n"
                 "\u25cb SOZ channel\n\u00d7 SOZ electrode\n"
                 f"mean over {width:g} s\naround each instant", fontsize=8, va="center",
                 ha="left", color="0.25", linespacing=1.3)
    else:
        ax = fig.add_subplot(spec)
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no topomap: the map has no step after the onset", ha="center",
                fontsize=9)
