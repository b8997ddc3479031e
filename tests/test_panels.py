"""The activation-map panel: layout, channel alignment, scalp projection, errors."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

mne = pytest.importorskip("mne")

from callbacks.panels import (  # noqa: E402
    Localization,
    _topomap_instants,
    render_activation_panel,
    save_panel,
    top_channel,
)
from eeg.head import _project, electrode_positions, project_electrodes, scalp_layout, scalp_positions  # noqa: E402
from eeg.montage import DOUBLE_BANANA, MontageError, soz_channel_mask  # noqa: E402
from lightning_modules.activation_maps import ActivationMaps  # noqa: E402

SF = 64.0
PRE, POST = 10.0, 20.0
SOZ = ("F7", "T7")


def _segment(seed=0):
    """18-channel noise with a 5 Hz rhythm in the left-temporal (SOZ) channels after onset."""
    rng = np.random.default_rng(seed)
    t = np.arange(int((PRE + POST) * SF)) / SF
    sig = rng.normal(0, 20, (len(DOUBLE_BANANA), t.size))
    mask = soz_channel_mask(DOUBLE_BANANA, SOZ).astype(bool)
    sig[mask] += 150 * (t >= PRE) * np.sin(2 * np.pi * 5 * t)
    return sig.astype(np.float32), t, mask


def _ecam(t, mask, step=4, channels=DOUBLE_BANANA):
    tt = t[::step]
    act = 0.1 + mask[:, None] * (tt >= PRE) * 1.0
    freq = np.where(mask, 5.0, 9.0)
    return ActivationMaps(act.astype(np.float32), tt, tuple(channels), freq_hz=freq, kind="ecam")


def _onset_map(mask, signed=False):
    ts = np.arange(PRE + POST) + 0.5
    act = mask[:, None] * (ts >= PRE) * 2.0 - (0.5 if signed else 0.0)
    att = np.exp(-((ts - PRE - 3) ** 2) / 10)
    prob = (ts >= PRE).astype(float)
    return ActivationMaps(act, ts, DOUBLE_BANANA, attention=att / att.sum(), probability=prob,
                          kind="onset_map")


def _render(sig, maps, **kw):
    args = dict(segment_start_s=400.0 - PRE, onset_s=400.0, offset_s=415.0,
                soz_channels=soz_channel_mask(DOUBLE_BANANA, SOZ), soz=SOZ,
                patient="chb05", recording_id="chb05_06")
    args.update(kw)
    return render_activation_panel(sig, SF, DOUBLE_BANANA, maps, **args)


def _axes_with_channel_ticks(fig):
    return [ax for ax in fig.axes
            if [t.get_text() for t in ax.get_yticklabels()] == list(DOUBLE_BANANA)]


def _topomap_axes(fig):
    return [ax for ax in fig.axes if ax.get_title().startswith(("onset", "peak"))]


def test_ecam_panel_layout_and_png(tmp_path):
    sig, t, mask = _segment()
    fig = _render(sig, _ecam(t, mask))
    assert isinstance(fig, Figure)
    w, h = fig.get_size_inches() * fig.dpi
    assert (round(w), round(h)) == (1400, 1000)
    title = fig._suptitle.get_text()
    for part in ("chb05", "chb05_06", "ECAM", "onset 400.0 s", "top channel"):
        assert part in title
    # The top channel is an SOZ channel here (activity only there after onset).
    top = title.split("top channel ")[1].split(" ")[0]
    assert top in np.array(DOUBLE_BANANA)[mask] and "(SOZ)" in title

    eeg, heat = _axes_with_channel_ticks(fig)
    # SOZ names bold red on both the traces and the heatmap, others not.
    for ax in (eeg, heat):
        for lab, s in zip(ax.get_yticklabels(), mask):
            assert (lab.get_fontweight() == "bold") == bool(s)
    # Shared, onset-relative time axis: the heatmap starts at -PRE s (half a step earlier).
    assert eeg.get_xlim() == heat.get_xlim()
    x0, x1 = heat.images[0].get_extent()[:2]
    assert x0 == pytest.approx(-PRE - 2 / SF)
    assert x1 == pytest.approx(POST - 2 / SF)
    # One trace per channel; onset at 0 and offset at +15 s drawn as vertical lines.
    assert len([ln for ln in eeg.lines if len(ln.get_xdata()) == sig.shape[1]]) == 18
    vlines = {float(ln.get_xdata()[0]) for ln in heat.lines if len(ln.get_xdata()) == 2
              and ln.get_xdata()[0] == ln.get_xdata()[1]}
    assert {0.0, 15.0} <= vlines
    # Dominant-frequency bars: one per channel, with the values written beside them.
    freq_ax = [ax for ax in fig.axes if ax.get_title() == "dominant\nfreq."]
    assert len(freq_ax) == 1 and len(freq_ax[0].patches) == 18
    assert {tx.get_text() for tx in freq_ax[0].texts} == {"5.0", "9.0"}
    # Topomaps: onset, +5, +15 (+30 is past the segment), and no separate peak (it is at onset).
    assert [ax.get_title() for ax in _topomap_axes(fig)] == ["onset", "onset +5 s",
                                                              "onset +15 s"]

    out = save_panel(fig, tmp_path / "sub" / "panel.png")
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob("*.tmp.png"))
    assert fig.axes == []  # cleared after saving
    import matplotlib.image as mpimg
    assert mpimg.imread(out).shape[:2] == (1000, 1400)


def test_onset_map_panel_has_attention_strip_and_no_frequency(tmp_path):
    sig, _, mask = _segment()
    fig = _render(sig, _onset_map(mask))
    assert "onset map" in fig._suptitle.get_text()
    labels = {ln.get_label() for ax in fig.axes for ln in ax.lines}
    assert {"attention", "seizure probability"} <= labels
    assert not [ax for ax in fig.axes if ax.get_title() == "dominant\nfreq."]
    # 1-s steps: cells from -PRE to +POST around the onset.
    heat = _axes_with_channel_ticks(fig)[1]
    assert heat.images[0].get_extent()[:2] == pytest.approx((-PRE, POST))
    assert heat.get_xlim() == pytest.approx((-PRE, POST))
    save_panel(fig, tmp_path / "onset.png")


def test_signed_map_uses_a_colour_scale_centred_on_zero():
    sig, _, mask = _segment()
    fig = _render(sig, _onset_map(mask, signed=True))
    heat = _axes_with_channel_ticks(fig)[1]
    norm = heat.images[0].norm
    assert isinstance(norm, TwoSlopeNorm) and norm.vcenter == 0 and norm.vmin == -norm.vmax


def test_uneven_steps_are_drawn_as_cells_with_their_own_edges():
    sig, _, mask = _segment()
    ts = np.array([0.5, 1.5, 3.0, 10.0, 25.0])  # e.g. a model with growing receptive fields
    maps = ActivationMaps(np.outer(mask, np.ones(5)), ts, DOUBLE_BANANA, kind="onset_map")
    heat = _axes_with_channel_ticks(_render(sig, maps))[1]
    mesh = heat.collections[0]
    assert mesh.get_array().shape == (18, 5)
    # Edges halfway between steps, shifted by (segment start - onset) = -PRE.
    xs = np.unique(np.round(mesh.get_coordinates()[..., 0], 6))
    np.testing.assert_allclose(xs, np.array([0.0, 1.0, 2.25, 6.5, 17.5, 32.5]) - PRE)


def test_map_rows_are_matched_to_signal_channels_by_name():
    sig, t, mask = _segment()
    maps = _ecam(t, mask)
    perm = np.random.default_rng(1).permutation(18)
    shuffled = ActivationMaps(maps.activity[perm], maps.times_s,
                              tuple(np.array(DOUBLE_BANANA)[perm].tolist()),
                              freq_hz=maps.freq_hz[perm], kind="ecam")
    a = _axes_with_channel_ticks(_render(sig, maps))[1].images[0].get_array()
    b = _axes_with_channel_ticks(_render(sig, shuffled))[1].images[0].get_array()
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("change, message", [
    (dict(channels=DOUBLE_BANANA[:-1] + ("T7-T8",)), "missing ['CZ-PZ'], extra ['T7-T8']"),
    (dict(freq_hz=np.zeros(3)), "freq_hz has shape (3,)"),
    (dict(attention=np.zeros(2)), "attention has shape (2,)"),
    (dict(times_s=np.zeros(3)), "times_s has shape (3,)"),
])
def test_inconsistent_maps_raise_naming_the_recording(change, message):
    sig, t, mask = _segment()
    base = _ecam(t, mask)
    fields = dict(activity=base.activity, times_s=base.times_s, channels=base.channels,
                  freq_hz=base.freq_hz, kind="ecam")
    fields.update(change)
    with pytest.raises(ValueError, match="chb05_06") as err:
        _render(sig, ActivationMaps(**fields))
    assert message in str(err.value)


def test_bad_signal_and_soz_mask_raise():
    sig, t, mask = _segment()
    with pytest.raises(ValueError, match=r"chb05_06: signal has shape \(17,"):
        _render(sig[:17], _ecam(t, mask))
    with pytest.raises(ValueError, match="soz_channels has 3 entries for 18 channels"):
        _render(sig, _ecam(t, mask), soz_channels=[1, 0, 1])


def test_topomap_instants_are_configurable():
    sig, t, mask = _segment()
    fig = _render(sig, _ecam(t, mask), topomap_times_s=(2.0, 12.0))
    # The activation starts at the onset, 2 s from the first instant: the peak gets its own map.
    assert [ax.get_title() for ax in _topomap_axes(fig)] == ["onset +2 s", "onset +12 s",
                                                              "peak +0.0 s"]


def test_without_onset_or_soz_the_axis_is_recording_time():
    sig, t, mask = _segment()
    fig = _render(sig, _ecam(t, mask), onset_s=None, offset_s=None, soz_channels=None, soz=None)
    eeg, heat = _axes_with_channel_ticks(fig)
    assert "time in recording" in heat.get_xlabel()
    assert heat.get_xlim()[0] == pytest.approx(400.0 - PRE - 2 / SF)
    assert all(lab.get_fontweight() != "bold" for lab in heat.get_yticklabels())
    assert "SOZ: unknown" in " ".join(t.get_text() for t in fig.texts)
    assert fig._suptitle.get_text().startswith(
        "chb05 \u00b7 chb05_06 \u00b7 ECAM \u00b7 no annotated onset")
    # No onset: a single peak topomap.
    assert [ax.get_title()[:4] for ax in _topomap_axes(fig)] == ["peak"]


def test_channels_without_scalp_position_still_render():
    chans = DOUBLE_BANANA[:17] + ("ECG",)  # a channel with no scalp position
    sig, t, mask = _segment()
    maps = ActivationMaps(np.ones((18, 10)), np.arange(10.0), chans, kind="onset_map")
    fig = render_activation_panel(sig, SF, chans, maps, recording_id="r1")
    assert not _topomap_axes(fig)
    assert any("no topomap" in t.get_text() for ax in fig.axes for t in ax.texts)
    with pytest.raises(MontageError, match="ECG"):
        scalp_positions(chans)


def test_topomap_projection_matches_mne():
    """Our projection of SOZ electrodes must land where MNE draws sensors of the same Info."""
    info, sphere = scalp_layout(DOUBLE_BANANA)
    fig = Figure()
    ax = fig.add_subplot()
    mne.viz.plot_topomap(np.arange(18.0), info, axes=ax, show=False, sphere=sphere,
                         mask=np.ones(18, bool), sensors=False, contours=0)
    drawn = [ln for ln in ax.lines if ln.get_marker() == "o"][0].get_xydata()
    np.testing.assert_allclose(_project(scalp_positions(DOUBLE_BANANA), sphere), drawn,
                               atol=1e-12)
    # Left-hemisphere chains drawn left (x < 0), right ones right, frontal ones in front.
    xy = dict(zip(DOUBLE_BANANA, drawn))
    assert xy["F7-T7"][0] < 0 < xy["F8-T8"][0]
    assert xy["FP1-F7"][1] > xy["P7-O1"][1]
    # The outer 10-20 ring is drawn at about 0.8 of the head outline (classic 10-20 diagram)
    # and every double-banana channel inside the head.
    r = np.linalg.norm(project_electrodes(["T7", "T8", "FPZ", "OZ"], sphere)
                       - np.asarray(sphere[:2]), axis=1)
    np.testing.assert_allclose(r / sphere[3], 0.8, rtol=0.15)
    assert (np.linalg.norm(drawn - np.asarray(sphere[:2]), axis=1) < sphere[3]).all()


def test_bipolar_channel_sits_on_the_scalp_between_its_electrodes():
    p, a, b = scalp_positions(["F7-T7", "F7", "T7"])  # head-centred
    assert np.linalg.norm(p) == pytest.approx((np.linalg.norm(a) + np.linalg.norm(b)) / 2)
    # Same angle to each electrode: the angular midpoint.
    cos = lambda u, v: u @ v / np.linalg.norm(u) / np.linalg.norm(v)  # noqa: E731
    assert cos(p, a) == pytest.approx(cos(p, b))
    # Head-centred: electrodes keep their distances (a translation of MNE's positions).
    pos = electrode_positions()
    assert np.linalg.norm(a - b) == pytest.approx(np.linalg.norm(pos["F7"] - pos["T7"]))


def test_top_channel_scores_the_requested_interval():
    act = np.zeros((3, 10))
    act[0, :5] = 5.0   # strong before t = 5 s
    act[2, 5:] = 1.0   # weaker, after
    maps = ActivationMaps(act, np.arange(10.0), ("FP1-F7", "F7-T7", "T7-P7"))
    assert top_channel(maps) == Localization(0, "FP1-F7", 2.5)
    assert top_channel(maps, 5.0, 10.0) == Localization(2, "T7-P7", 1.0)
    tie = ActivationMaps(np.ones((3, 4)), np.arange(4.0), ("FP1-F7", "F7-T7", "T7-P7"))
    assert top_channel(tie).channel == "FP1-F7"
    with pytest.raises(ValueError, match="no finite"):
        top_channel(ActivationMaps(np.full((2, 3), np.nan), np.arange(3.0), ("A-B", "C-D")))


def test_topomap_instants_keep_those_inside_and_add_a_distinct_peak():
    t = np.arange(-10, 20) + 0.5
    act = np.zeros((2, t.size))
    act[1, t == 12.5] = 3.0
    got = _topomap_instants(act, t, True, (0.0, 5.0, 15.0, 30.0))
    assert got == [("onset", 0.0), ("onset +5 s", 5.0), ("onset +15 s", 15.0),
                   ("peak +12.5 s", 12.5)]
    act[1, :] = 0
    act[1, t == 15.5] = 3.0  # within 2 s of +15 s: no extra map
    assert [lab for lab, _ in _topomap_instants(act, t, True, (0.0, 15.0))] == [
        "onset", "onset +15 s"]


def test_long_traces_are_decimated_keeping_their_envelope():
    from callbacks.panels import _minmax_decimate

    rng = np.random.default_rng(3)
    t = np.arange(23040) / 256.0  # 90 s at 256 Hz
    y = rng.normal(size=(2, t.size))
    y[1, 12345] = 50.0  # a single-sample spike must survive
    tt, yy = _minmax_decimate(t, y, 1500)
    assert yy.shape == (2, 3000 + 23040 - 15 * 1500)
    assert (np.diff(tt, axis=1) > 0).all()  # still in time order
    for k in range(2):
        np.testing.assert_array_equal(np.interp(tt[k], t, y[k]), yy[k])  # real samples
        for a, b in [(0, 15), (15 * 700, 15 * 701), (15 * 1499, 15 * 1500)]:
            sel = (tt[k] >= t[a]) & (tt[k] < t[b])
            assert yy[k, sel].max() == y[k, a:b].max() and yy[k, sel].min() == y[k, a:b].min()
    assert yy[1].max() == 50.0
    # Short segments are drawn sample by sample.
    tt, yy = _minmax_decimate(t[:6000], y[:, :6000], 1500)
    assert yy.shape == (2, 6000)


def test_frequency_of_channels_not_activated_is_not_drawn_and_the_track_is():
    """NaN (not activated) channels get no bar; the per-second track is drawn on the panel's
    time axis, the top channel as a line."""
    import torch

    from lightning_modules.lsn import frequency_track

    sig, t, mask = _segment()
    weight = np.where(mask[:, None] & (t >= PRE)[None], 1.0, 0.0)
    track, t_track = frequency_track(torch.from_numpy(sig), torch.from_numpy(weight), SF)
    base = _ecam(t, mask)
    maps = ActivationMaps(base.activity, base.times_s, base.channels,
                          freq_hz=np.where(mask, 5.0, np.nan), freq_track_hz=track.numpy(),
                          freq_times_s=t_track.numpy(), kind="ecam")
    assert np.isnan(track.numpy()[~mask]).all()
    # the SOZ rhythm is 5 Hz: the track says so where the weight is on
    assert np.nanmedian(track.numpy()[mask]) == pytest.approx(5.0, abs=0.3)
    fig = _render(sig, maps)
    freq_ax = [ax for ax in fig.axes if ax.get_title() == "dominant\nfreq."]
    assert len(freq_ax[0].patches) == int(mask.sum())
    track_ax = [ax for ax in fig.axes if ax.get_ylabel() == "dominant\nfreq. (Hz)"]
    assert len(track_ax) == 1
    top = [ln for ln in track_ax[0].lines if ln.get_label().startswith("top channel")]
    assert len(top) == 1 and np.nanmedian(top[0].get_ydata()) == pytest.approx(5.0, abs=0.3)
    # track times are onset-relative like every other time axis
    assert np.nanmin(top[0].get_xdata()) == pytest.approx(-PRE + 1.0)
    with pytest.raises(ValueError, match="freq_track_hz"):
        _render(sig, ActivationMaps(base.activity, base.times_s, base.channels, freq_track_hz=track.numpy(),
                                    kind="ecam"))
