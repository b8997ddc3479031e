"""What the synthetic signals hold, measured on the written files (double banana, as models see it):
seizures of both presets, propagation that outgrows the onset zone, electrodecremental onsets,
sleep, artifacts and hard negatives."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from datamodules import synthetic as S
from datamodules.synthetic.artifacts import HARD_NEGATIVE_GUARD_S
from eeg.montage import CHBMIT_23, DOUBLE_BANANA, derive, soz_channel_mask

SF = 256


def _read(path) -> np.ndarray:
    import mne

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicated T8-P8 label
        raw = mne.io.read_raw_edf(path, preload=True, verbose="error")
    return raw.get_data() * 1e6


def _banana(root, rec) -> np.ndarray:
    return derive(CHBMIT_23).apply(_read(root / rec.path)).astype(float)


def _band_power(x, lo, hi):
    """Mean square (uV^2) of ``x`` between ``lo`` and ``hi`` Hz, per row (Parseval)."""
    n = x.shape[-1]
    f = np.fft.rfftfreq(n, 1 / SF)
    p = 2 * np.abs(np.fft.rfft(x, axis=-1)) ** 2 / n ** 2
    return p[..., (f >= lo) & (f < hi)].sum(-1)


def _quiet(y, exclude) -> np.ndarray:
    """Median power per channel of the 1 s windows outside ``exclude`` (a typical second)."""
    keep = ~exclude
    q = y[:, keep][:, :keep.sum() // SF * SF].reshape(len(y), -1, SF)
    return np.median(np.mean(q ** 2, axis=2), axis=1)


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    root = tmp_path_factory.mktemp("phys") / "easy"
    return root, S.generate_corpus(root, preset="easy", n_patients=2, n_recordings=1, minutes=6.0, seed=11,
                                   seizures_per_patient=(2, 2), seizure_s=(15, 40))


@pytest.fixture(scope="module")
def spreading(tmp_path_factory):
    """Realistic seizures, every one with a propagated rhythm larger than at the onset zone, no
    artifacts or sleep (so what is measured is the seizure)."""
    root = tmp_path_factory.mktemp("phys") / "spreading"
    return root, S.generate_corpus(root, n_patients=3, n_recordings=1, minutes=10.0, seed=2,
                                   seizures_per_patient=(2, 2), seizure_s=(25, 40), propagation=1.0,
                                   artifacts=0, sleep=0, morphologies=("evolving", "rhythmic_buildup"))


# ------------------------------------------------------------------ seizures
def test_easy_seizures_are_focal_strong_and_evolving(easy):
    """Ictal power in onset-zone channels against their background and against the other
    channels, fast activity at onset, frequency falling during the seizure."""
    root, truth = easy
    ratios = []
    for p in truth.patients:
        soz = soz_channel_mask(DOUBLE_BANANA, p.soz).astype(bool)
        for rec in p.recordings:
            y = _banana(root, rec)
            ictal = np.zeros(y.shape[1], bool)
            for s in rec.seizure_details:
                ictal[s.onset_s * SF:(s.offset_s + 60) * SF] = True  # post-ictal too
            bg = _quiet(y, ictal)
            assert 8 < np.sqrt(bg).min() and np.sqrt(bg).max() < 70  # bipolar EEG, not noise or clipping
            for s in rec.seizure_details:
                assert s.morphology == "electrodecremental" and s.onset_s == s.true_onset_s
                seg = y[:, s.onset_s * SF:s.offset_s * SF]
                power = np.mean(seg ** 2, axis=1)
                r = (power[soz].mean() / bg[soz].mean(), power[soz].mean() / power[~soz].mean())
                ratios.append(r)
                assert r[0] > 2.5 and r[1] > 1.5, (r, s)
                # low-voltage fast activity (15-30 Hz) opens the seizure in the onset zone
                lv = y[soz, s.onset_s * SF:int((s.onset_s + s.lvfa_s) * SF)]
                ref = _band_power(y[soz][:, ~ictal][:, :SF * 60].reshape(int(soz.sum()), -1, SF), 14, 30)
                assert np.max(_band_power(lv, 14, 30) / np.median(ref, axis=1)) > 2.5, s
                # the discharges slow down: dominant frequency early > late
                best = np.flatnonzero(soz)[np.argmax(power[soz])]
                start = int((s.onset_s + s.lvfa_s) * SF)
                third = (s.offset_s * SF - start) // 3
                f = np.fft.rfftfreq(third, 1 / SF)
                keep = (f > 1.5) & (f < 12)

                def peak(a, f=f, keep=keep):
                    return f[keep][np.argmax(np.abs(np.fft.rfft(a))[keep])]

                assert peak(y[best, start:start + third]) > peak(y[best, start + 2 * third:start + 3 * third]) + 0.5
    assert len(ratios) == 4 and np.median(ratios, axis=0)[0] > 5


def test_realistic_gain_is_modest_and_the_rhythm_is_in_its_band(spreading):
    """Before propagation, the onset zone's ictal band rises well above its background while its
    broadband RMS is only 1.2-3x (plus background) above."""
    root, truth = spreading
    for p in truth.patients:
        soz = soz_channel_mask(DOUBLE_BANANA, p.soz).astype(bool)
        for rec in p.recordings:
            y = _banana(root, rec)
            ictal = np.zeros(y.shape[1], bool)
            for s in rec.seizure_details:
                ictal[int((s.true_onset_s - 30) * SF):int((s.true_offset_s + 120) * SF)] = True
            bg = _quiet(y, ictal)
            for s in rec.seizure_details:
                assert 1.2 * 0.8 <= s.gain <= 3.0 * 1.2
                a = int(s.true_onset_s * SF)
                b = int((s.true_onset_s + s.propagation_s) * SF)
                seg = y[soz, a:b]
                rms_ratio = np.sqrt(np.mean(seg ** 2, axis=1) / bg[soz]).max()
                assert 1.0 < rms_ratio < 4.5, (rms_ratio, s)
                lo, hi = s.band_hz
                quiet = y[soz][:, ~ictal][:, :SF * 120].reshape(int(soz.sum()), -1, 2 * SF)
                band_ratio = (_band_power(seg, lo, hi) / np.median(_band_power(quiet, lo, hi), axis=1)).max()
                assert band_ratio > 2.0 * rms_ratio ** 2 / 2, (band_ratio, rms_ratio, s)


def test_propagated_rhythm_outgrows_the_onset_zone_which_starts_first(spreading):
    """The loudest channel is not in the onset zone once the rhythm has propagated, while the
    onset zone was involved first: largest amplitude is wrong, earliest involvement right."""
    root, truth = spreading
    n = 0
    for p in truth.patients:
        soz = soz_channel_mask(DOUBLE_BANANA, p.soz).astype(bool)
        for rec in p.recordings:
            y = _banana(root, rec)
            for s in rec.seizure_details:
                assert s.propagation and s.propagation_s is not None
                assert not set(s.propagation) & set(p.soz)
                prop = soz_channel_mask(DOUBLE_BANANA, s.propagation).astype(bool) & ~soz
                assert prop.any()
                a = int(s.true_onset_s * SF)
                pre = y[:, a - 20 * SF:a - SF]
                # the onset zone's ictal band rises first; the propagation site's only later
                lo, hi = s.band_hz
                base = _band_power(pre, lo, hi)
                early = _band_power(y[:, a:a + int((s.propagation_s - 0.5) * SF)], lo, hi) / base
                b = int(s.true_offset_s * SF) - SF
                late = _band_power(y[:, a + int((s.propagation_s + 2) * SF):b], lo, hi) / base
                assert early[soz].max() > 1.25, (early[soz], s)  # onsets may be subtle
                assert early[prop].max() < 0.5 * late[prop].max(), (early[prop], late[prop], s)
                # after propagation: the loudest channel is outside the onset zone
                late = y[:, a + int((s.propagation_s + 2) * SF):b]
                rms = np.sqrt(np.mean(late ** 2, axis=1))
                assert not soz[np.argmax(rms)], (DOUBLE_BANANA[np.argmax(rms)], s)
                n += 1
    assert n == 6


def test_electrodecremental_onset_attenuates_and_adds_fast_activity(tmp_path):
    root = tmp_path / "decrement"
    truth = S.generate_corpus(root, n_patients=2, n_recordings=1, minutes=8.0, seed=4, seizures_per_patient=(2, 2),
                              seizure_s=(30, 50), morphologies=("electrodecremental",), propagation=0, artifacts=0,
                              sleep=0, ictal_emg=0)
    for p in truth.patients:
        soz = soz_channel_mask(DOUBLE_BANANA, p.soz).astype(bool)
        for rec in p.recordings:
            y = _banana(root, rec)
            for s in rec.seizure_details:
                assert s.lvfa_s >= 2 and 15 <= s.lvfa_hz <= 30
                a = int(s.true_onset_s * SF)
                during = y[soz, a + SF // 2:a + int(s.lvfa_s * SF)]
                before = y[soz, a - 30 * SF:a - 2 * SF]
                fast = _band_power(during, 14, 31) / _band_power(before, 14, 31)
                slow = _band_power(during, 0.5, 8) / _band_power(before, 0.5, 8)
                assert fast.max() > 2.0 and np.median(slow) < 1.0, (fast, slow, s)


# ------------------------------------------------------------------ background, sleep, artifacts
@pytest.fixture(scope="module")
def busy_background(tmp_path_factory):
    """One patient, one 20-minute realistic recording, asleep part of the time, with every artifact
    frequent enough to be there."""
    root = tmp_path_factory.mktemp("phys") / "background"
    rates = {"movement": 30, "bad_electrode": 8, "chewing": 30, "muscle": 120, "pop": 60}
    return root, S.generate_corpus(root, n_patients=1, n_recordings=1, minutes=20.0, seed=12, sleep=(0.5, 0.5),
                                   rates=rates, seizures_per_patient=(1, 1))


def test_sleep_has_delta_spindles_and_k_complexes(busy_background):
    root, truth = busy_background
    rec = truth.recordings[0]
    states = {s.state for s in rec.states}
    assert {"awake", "asleep"} <= states, rec.states
    kinds = {e.kind for e in rec.events}
    assert {"spindle", "k_complex", "vertex_wave"} <= kinds
    y = _banana(root, rec)
    mask = {k: np.zeros(y.shape[1], bool) for k in ("awake", "asleep")}
    for s in rec.states:
        if s.state in mask and s.duration_s > 60:
            mask[s.state][int((s.onset_s + 10) * SF):int((s.onset_s + s.duration_s - 10) * SF)] = True
    for s in rec.seizure_details:
        for m in mask.values():
            m[int((s.true_onset_s - 30) * SF):int((s.true_offset_s + 120) * SF)] = False
    delta = {k: np.median(_band_power(y[:, m][:, :m.sum() // (2 * SF) * 2 * SF].reshape(18, -1, 2 * SF), 0.5, 2.5))
             for k, m in mask.items()}
    assert delta["asleep"] > 1.8 * delta["awake"], delta
    # spindles: 12-14 Hz bursts over the centre
    c3p3 = DOUBLE_BANANA.index("C3-P3")
    spindles = [e for e in rec.events if e.kind == "spindle"]
    inside = [_band_power(y[c3p3, int(e.onset_s * SF):int((e.onset_s + e.duration_s) * SF)], 11, 15) for e in spindles]
    outside = _band_power(y[c3p3, mask["asleep"]][:SF * 60].reshape(-1, SF), 11, 15)
    assert np.median(inside) > 2 * np.median(outside)


def test_artifacts_show_where_they_should(busy_background):
    root, truth = busy_background
    rec = truth.recordings[0]
    kinds = {e.kind for e in rec.events}
    assert {"blink", "muscle", "chewing", "movement", "pop", "bad_electrode"} <= kinds, kinds
    y = _banana(root, rec)
    typical = np.median(np.mean(y[:, :y.shape[1] // SF * SF].reshape(18, -1, SF) ** 2, axis=2), axis=1)

    def power(e, lo=None, hi=None):
        seg = y[:, int(e.onset_s * SF):int((e.onset_s + e.duration_s) * SF)]
        return np.mean(seg ** 2, axis=1) if lo is None else _band_power(seg, lo, hi)

    moves = [e for e in rec.events if e.kind == "movement"]
    assert np.median([np.median(power(e) / typical) for e in moves]) > 3  # every channel
    for e in (e for e in rec.events if e.kind == "bad_electrode"):
        touching = soz_channel_mask(DOUBLE_BANANA, e.electrodes).astype(bool)
        if touching.any():  # FT9/FT10 are outside the double banana
            # a typical second of the minutes it lasts (other artifacts come and go meanwhile)
            seg = y[:, int(e.onset_s * SF):int((e.onset_s + e.duration_s) * SF)]
            ratio = np.median(np.mean(seg[:, :seg.shape[1] // SF * SF].reshape(18, -1, SF) ** 2, axis=2), axis=1)
            ratio = ratio / typical
            assert ratio[touching].min() > 1.5 * np.median(ratio[~touching]), (e, ratio)
    # muscle: 20-40 Hz power up in the channels of the muscle group
    quiet_fast = np.median(_band_power(y[:, :SF * 600].reshape(18, -1, SF), 20, 40), axis=1)
    bursts = [e for e in rec.events if e.kind in ("muscle", "chewing") and e.duration_s > 2]
    ratios = [(power(e, 20, 40) / quiet_fast)[soz_channel_mask(DOUBLE_BANANA, e.electrodes) > 0].max() for e in bursts]
    assert np.median(ratios) > 3


def test_saturation_only_in_electrode_pops_and_movement(busy_background, easy):
    for root, truth in (busy_background, easy):
        for rec in truth.recordings:
            x = _read(root / rec.path)
            t = np.flatnonzero((np.abs(x) >= 800 - S.QUANTUM_UV).any(axis=0)) / SF
            spans = [(e.onset_s, e.onset_s + e.duration_s) for e in rec.events if e.kind in ("pop", "movement")]
            assert all(any(a - 0.01 <= v <= b for a, b in spans) for v in t)


def test_hard_negatives_stay_away_from_seizures(busy_background, easy):
    before, after = HARD_NEGATIVE_GUARD_S
    for _, truth in (busy_background, easy):
        for r in truth.recordings:
            assert {"rhythmic_burst", "interictal_spike"} & {e.kind for e in r.events}
            for e in r.events:
                assert 0 <= e.onset_s and e.onset_s + e.duration_s <= r.duration_s
                if e.hard_negative:
                    assert all(e.onset_s + e.duration_s < s.true_onset_s - before or e.onset_s > s.true_offset_s + after
                               for s in r.seizure_details)


def test_clean_corpus_has_no_events(tmp_path):
    truth = S.generate_corpus(tmp_path / "clean", preset="easy", n_patients=1, n_recordings=1, minutes=3.0,
                              artifacts=0.0)
    assert all(not r.events for r in truth.recordings)
    asleep = S.generate_corpus(tmp_path / "sleep", n_patients=1, n_recordings=1, minutes=6.0, artifacts=0.0,
                               sleep=(0.8, 0.8), seed=1)
    assert {e.kind for r in asleep.recordings for e in r.events} <= {"spindle", "vertex_wave", "k_complex"}
