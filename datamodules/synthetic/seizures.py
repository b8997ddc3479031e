"""Seizures: how many, how long, where they start, how they look and spread, how they are marked.

Morphologies (each patient has a usual one; a quarter of its seizures take another):

* ``evolving``: rhythmic discharges whose frequency falls (for example 8 Hz to 3 Hz) while the
  amplitude builds up and the waveform turns from sinusoidal to spike-and-wave;
* ``electrodecremental``: attenuation of the background at the onset zone with low-voltage fast
  activity (15-30 Hz) for seconds, then an evolving rhythm;
* ``rhythmic_buildup``: a theta or delta rhythm (3-7 Hz) that builds up slowly with little change
  of frequency;
* ``spike_wave``: spike-and-wave complexes at 2.5-4 Hz from the start.

Space and time: the rhythm starts on the onset-zone electrodes (unequal weights and lags of a few
ms, so bipolar pairs inside the zone do not cancel), neighbours join after 2-20 s, the other
hemisphere sometimes later. In a share of seizures (``propagation``) the propagated rhythm, in
a neighbouring region or the homologous region of the other hemisphere, becomes larger than at
the onset zone: the largest channel is then not the onset zone, the earliest one is. Amplitude
at the plateau is ``ictal_gain`` times the background in the strongest onset-zone channel.
Some seizures are partly hidden under muscle artifact (``ictal_emg``); most are followed by
post-ictal slowing and suppression of variable depth and length.

Annotations: the summary's onset is the true onset shifted by a per-seizure marking error
(``onset_error_s``; clinicians mark late more often than early), its offset is jittered by
``offset_error_s``; both kept in the truth file.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from .artifacts import draw_muscle, emg, muscle_weights
from .params import MARGIN_S, GenerationParams
from .physiology import PatientModel
from .primitives import ELECTRODES, SFREQ, discharge, geometry, narrowband, shaped_noise, smooth_noise, smoothstep
from .truth import SeizureTruth

#: At most this many seizures in one recording.
MAX_SEIZURES_PER_RECORDING = 3
#: Seizures of one recording are at least this far apart (s): SzCORE merges events closer than 90 s.
SEIZURE_GAP_S = 2 * MARGIN_S
#: Spread (sigma of the log) of a patient's seizure durations around its median.
DURATION_SIGMA = 0.8
#: Largest bipolar ictal discharge (uV), leaving room in the +-800 uV range for what adds to it.
ICTAL_PEAK_UV = 520.0

#: Onset zones a patient may get: (region name from ``eeg.montage.REGIONS``, electrodes with the
#: electrode of maximal field first). Focal sets of 2-3 neighbouring electrodes.
SOZ_CATALOG: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("left temporal", ("T7", "F7", "FT9")),
    ("right frontal", ("F4", "FP2", "F8")),
    ("right temporal", ("T8", "P8", "FT10")),
    ("left frontal", ("F3", "FP1", "F7")),
    ("right parietal", ("P4", "P8")),
    ("left central", ("C3", "F3", "P3")),
    ("right temporal", ("F8", "T8", "FT10")),
    ("left parietal", ("P3", "P7")),
    ("midline", ("CZ", "PZ", "FZ")),
    ("left occipital", ("O1", "P7", "P3")),
    ("right central", ("C4", "F4", "P4")),
    ("left temporal", ("P7", "T7")),
)


@dataclass(frozen=True)
class SeizureStyle:
    """How one patient's seizures look (drawn once per patient; each seizure varies around it)."""

    morphology: str
    freq_start_hz: float
    freq_end_hz: float
    theta_hz: float
    sw_hz: float
    lvfa_hz: float
    gain: float
    spikiness: float
    spike_ms: float
    spread: float
    spread_cm: float
    spread_s: float
    duration_median_s: float
    post_tau_s: float
    post_gain: float


def draw_style(rng: np.random.Generator, params: GenerationParams) -> SeizureStyle:
    return SeizureStyle(
        morphology=str(rng.choice(params.morphologies)),
        freq_start_hz=float(rng.uniform(5.5, 9.0)),
        freq_end_hz=float(rng.uniform(2.5, 4.0)),
        theta_hz=float(rng.uniform(3.5, 7.0)),
        sw_hz=float(rng.uniform(2.5, 4.0)),
        lvfa_hz=float(rng.uniform(15.0, 28.0)),
        gain=float(rng.uniform(*params.ictal_gain)),
        spikiness=float(rng.uniform(0.4, 1.0)),
        spike_ms=float(rng.uniform(10.0, 18.0)),
        spread=float(rng.uniform(0.25, 0.6)),
        spread_cm=float(rng.uniform(5.0, 8.0)),
        spread_s=float(np.clip(2.0 + rng.exponential(4.0), 2.0, 20.0)),
        duration_median_s=float(rng.uniform(*params.seizure_median_s)),
        post_tau_s=float(rng.uniform(10.0, 60.0)),
        post_gain=float(rng.uniform(0.6, 2.2)),
    )


def soz_weights(rng: np.random.Generator, n: int) -> tuple[float, ...]:
    """Unequal fields within the zone (equal weights would cancel in the bipolar pair between them)."""
    others = np.sort(rng.uniform(0.3, 0.8, n - 1))[::-1]
    return (1.0, *[round(float(v), 3) for v in others])


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------
def _room(duration_s: float, k: int) -> float:
    """Seconds left for ``k`` seizures once the edge margins and the gaps between them are kept
    (one second spare, so that the last offset stays inside the file)."""
    return duration_s - 2 * MARGIN_S - (k - 1) * SEIZURE_GAP_S - 1


def _capacity(duration_s: float, shortest_s: float) -> int:
    k = 0
    while k < MAX_SEIZURES_PER_RECORDING and _room(duration_s, k + 1) >= (k + 1) * shortest_s:
        k += 1
    return k


def plan_seizures(rng: np.random.Generator, style: SeizureStyle, durations: list[int],
                  params: GenerationParams) -> list[list[tuple[float, float]]]:
    """True (onset_s, offset_s) per recording: no overlap, >= MARGIN_S from file edges and
    SEIZURE_GAP_S from each other, at most 3 per recording, lognormal durations."""
    lo, hi = params.seizure_s
    caps = [_capacity(t, lo) for t in durations]
    # seizure-free recordings (when the patient has more recordings than that)
    free = params.seizure_free_recordings
    if 0 < free < len(durations):
        for i in rng.choice(len(durations), free, replace=False):
            caps[int(i)] = 0
    if sum(caps) == 0:
        raise ValueError(f"recordings of {max(durations)} s cannot hold a seizure of {lo:g} s with {MARGIN_S} s "
                         f"margins: make the recordings longer")
    n = int(rng.integers(params.seizures_per_patient[0], params.seizures_per_patient[1] + 1))
    n = max(1, min(n, sum(caps)))
    counts = [0] * len(durations)
    for _ in range(n):
        open_ = [i for i in range(len(durations)) if counts[i] < caps[i]]
        counts[int(rng.choice(open_))] += 1
    exact = params.onset_error_s == (0.0, 0.0) and params.offset_error_s == 0.0
    # lognormal durations around the patient's median, drawn stratified (one per quantile band
    # of the patient's n), so each patient's short and long seizures are both there
    z = ndtri((rng.permutation(n) + rng.uniform(0.02, 0.98, n)) / n)
    all_d = np.clip(style.duration_median_s * np.exp(DURATION_SIGMA * z), lo, hi)
    plans = []
    for t, k in zip(durations, counts):
        if k == 0:
            plans.append([])
            continue
        d, all_d = all_d[:k], all_d[k:]
        d = np.round(d) if exact else np.round(d, 2)
        room = _room(t, k)
        while d.sum() > room:  # trim the longest to fit, never below the minimum (room >= k*lo)
            i = int(np.argmax(d))
            d[i] -= min(float(d.sum() - room), float(d[i] - lo))
        slack = float(room - d.sum())
        share = rng.dirichlet(np.ones(k + 1)) * slack
        share = np.floor(share) if exact else np.round(share, 2)
        onsets, t0 = [], float(MARGIN_S + share[0])
        for i in range(k):
            onsets.append((round(t0, 2), round(t0 + float(d[i]), 2)))
            t0 += float(d[i]) + SEIZURE_GAP_S + float(share[i + 1])
        plans.append(onsets)
    return plans


def share_of(rng: np.random.Generator, n: int, share: float) -> list[bool]:
    """Which of a patient's ``n`` seizures have a trait given to ``share`` of seizures: that share
    of them, stochastically rounded (a patient with 4 seizures and share 0.7 gets 3, rarely 2)."""
    k = min(n, int(np.floor(share * n + rng.random())))
    flags = np.zeros(n, bool)
    flags[rng.choice(n, k, replace=False)] = True
    return [bool(f) for f in flags]


def mark(rng: np.random.Generator, true_on: float, true_off: float, duration_s: int,
         params: GenerationParams) -> tuple[int, int]:
    """The annotated (onset_s, offset_s) of a seizure: whole seconds, with the marking error."""
    dur = true_off - true_on
    lo, hi = params.onset_error_s
    err_on = 0.0 if lo == hi == 0 else float(rng.triangular(lo, lo + 0.35 * (hi - lo), hi))
    err_on = min(err_on, 0.4 * dur)  # nobody marks a short seizure after its middle
    e = params.offset_error_s
    err_off = float(rng.uniform(-e, e)) if e > 0 else 0.0
    on = int(round(true_on + err_on))
    off = int(round(true_off + err_off))
    off = max(off, on + max(2, int(round(0.5 * dur))))
    return max(on, 1), min(off, duration_s - 1)


# --------------------------------------------------------------------------------------------
# Synthesis
# --------------------------------------------------------------------------------------------
def _rhythm(rng, morphology: str, style: SeizureStyle, t: np.ndarray, start_s: float, dur: float):
    """Waveform (peak about 1), envelope, and frequency track of the ictal rhythm from ``start_s``
    to ``dur`` (``t`` in seconds from the true onset)."""
    jit = lambda s: float(np.exp(s * rng.standard_normal()))  # noqa: E731  per-seizure variation
    tr = t - start_s
    length = max(dur - start_s, 1.0)
    u = np.clip(tr / length, 0.0, 1.0)
    if morphology in ("evolving", "electrodecremental"):
        f0 = style.freq_start_hz * jit(0.06)
        f1 = min(style.freq_end_hz * jit(0.08), 0.6 * f0)
        freq = f1 + (f0 - f1) * np.exp(-3.0 * u)
        spik = style.spikiness * np.clip((f0 - freq) / (f0 - f1), 0.0, 1.0) ** 0.7
        grow = min(rng.uniform(8.0, 30.0), 0.6 * length)
        floor = 0.35
    elif morphology == "rhythmic_buildup":
        f0 = style.theta_hz * jit(0.08)
        f1 = f0 * rng.uniform(0.75, 0.95)
        freq = f0 + (f1 - f0) * u
        spik = np.full(t.size, 0.15 * style.spikiness)
        grow = min(rng.uniform(8.0, 30.0), 0.6 * length)
        floor = 0.25
    else:  # spike_wave
        f0 = style.sw_hz * jit(0.06)
        f1 = f0 * rng.uniform(0.7, 0.9)
        freq = f0 + (f1 - f0) * u
        spik = np.full(t.size, max(style.spikiness, 0.7))
        grow = min(rng.uniform(2.0, 8.0), 0.5 * length)
        floor = 0.4
    freq = freq * (1.0 + 0.07 * smooth_noise(rng, t.size, 0.4))  # discharges are not a metronome
    phase = 2 * np.pi * np.cumsum(freq) / SFREQ + rng.uniform(0, 2 * np.pi)
    wave = discharge(phase, freq, spik, style.spike_ms)
    # a second harmonic whose phase drifts: sharply contoured, slowly changing waveforms
    wave += 0.3 * (1.0 - spik) * np.cos(2 * phase + 2.0 * smooth_noise(rng, t.size, 1.5))
    end_ramp = min(2.0, 0.1 * dur)
    env = (floor + (1.0 - floor) * smoothstep(tr / grow)) * smoothstep((tr + 1.0) / 2.0)
    env *= smoothstep((dur - t) / end_ramp) * (tr >= -1.0)
    env *= np.clip(1.0 + 0.3 * smooth_noise(rng, t.size, 0.25), 0.4, 1.6)  # cycle to cycle
    inside = (tr >= 0) & (t <= dur)
    band = (float(freq[inside].min()), float(freq[inside].max())) if inside.any() else (f1, f0)
    return wave, env, (round(max(band[0] - 0.5, 0.5), 2), round(band[1] + 0.5, 2)), float(f0), float(f1)


def add_seizure(rng: np.random.Generator, x: np.ndarray, model: PatientModel, style: SeizureStyle,
                params: GenerationParams, true_on: float, true_off: float, next_onset: float | None,
                duration_s: int, propagates: bool, under_emg: bool) -> SeizureTruth:
    """Write one seizure (and its post-ictal period) into electrode signals ``x`` (in place).

    ``propagates``: its propagated rhythm outgrows the onset zone; ``under_emg``: muscle artifact
    covers part of it (see :func:`share_of`)."""
    g = geometry()
    n_total = x.shape[1]
    dur = true_off - true_on
    jit = lambda s: float(np.exp(s * rng.standard_normal()))  # noqa: E731  per-seizure variation
    morphology = style.morphology
    if len(params.morphologies) > 1 and rng.random() < 0.25:
        morphology = str(rng.choice([m for m in params.morphologies if m != style.morphology]))
    lvfa_s, lvfa_hz = 0.0, 0.0
    if morphology == "electrodecremental":
        lvfa_s = float(min(rng.uniform(2.0, 8.0), 0.3 * dur))
        lvfa_hz = float(np.clip(style.lvfa_hz * jit(0.05), 15.0, 30.0))

    w_soz = model.w_soz
    # neighbours are recruited unevenly (each is a source of its own, not only volume
    # conduction, which would cancel in the bipolar pairs between them)
    spread = float(np.clip(style.spread * jit(0.25), 0.1, 0.7))
    outside = spread * np.exp(-0.5 * (model.dist_soz / (style.spread_cm * jit(0.1))) ** 2)
    outside = np.minimum(outside * np.exp(0.35 * rng.standard_normal(outside.size)), 0.6)
    w = np.where(w_soz > 0, w_soz, outside)
    spread_s = float(np.clip(style.spread_s * jit(0.3), 2.0, 20.0))
    speed = rng.uniform(1.0, 3.0)  # cm/s beyond the first neighbours
    delay = np.where(w_soz > 0, rng.uniform(0.0, 1.5, w.size) * (w_soz < 1.0),
                     lvfa_s + spread_s + np.maximum(model.dist_soz - 3.0, 0.0) / speed)
    lag = np.where(w_soz > 0, rng.uniform(0.0, 0.015, w.size), 0.004 * model.dist_soz + rng.uniform(0, 0.01, w.size))
    lag = np.round(lag * SFREQ).astype(int)  # per-discharge propagation, decorrelates neighbours

    n = int(round(dur * SFREQ))
    pad = int(lag.max()) + 1
    t = (np.arange(n + pad) - pad) / SFREQ  # time from the true onset, padded for the lags
    wave, env, band, f0, f1 = _rhythm(rng, morphology, style, t, lvfa_s, dur)
    rhythm = env * wave
    # amplitude: the plateau RMS in the strongest onset-zone bipolar channel is gain x background
    gain = float(style.gain * jit(0.12))
    lo_gain, hi_gain = params.ictal_gain
    gain = float(np.clip(gain, 0.8 * lo_gain, 1.2 * hi_gain))
    plateau = env > 0.8 * env.max()
    wave_rms = float(np.sqrt(np.mean(wave[plateau] ** 2))) if plateau.any() else 0.7
    delta_soz = max(g.max_bipolar(w_soz), 0.2)
    amp = gain * model.bg_bipolar_uV / wave_rms / delta_soz

    ts = np.arange(n) / SFREQ
    spread_w = w[:, None] * smoothstep((ts[None, :] - delay[:, None]) / 2.0)
    # propagation that outgrows the onset zone (neighbouring region or the other hemisphere)
    prop_els: tuple[str, ...] = ()
    prop_s = contra_s = None
    if propagates and dur >= 6.0:
        # where the rhythm outgrows the onset zone: a neighbouring region (electrodes that share
        # no double-banana channel with the zone, else the larger field would show in a zone
        # channel) or the homologous region of the other hemisphere
        cand = [i for i in model.propagation_sites if 4.0 <= model.dist_soz[i] <= 10.0]
        if cand and (model.midline or rng.random() < 0.5):
            d_c = g.dist[:, int(rng.choice(cand))]
        else:
            d_c = model.dist_mirror
        w_p = np.exp(-0.5 * (d_c / rng.uniform(2.5, 3.5)) ** 2) * (w_soz == 0)
        w_p *= np.exp(0.25 * rng.standard_normal(w_p.size))
        ratio = rng.uniform(1.4, 2.4)  # propagated bipolar field over the onset zone's
        w_p *= ratio * delta_soz / max(g.max_bipolar(w_p), 1e-6)
        prop_s = lvfa_s + float(min(rng.uniform(1.5, 5.0), 0.5 * dur))
        spread_w += w_p[:, None] * smoothstep((ts[None, :] - prop_s) / 2.0)
        w = w + w_p
        prop_els = tuple(ELECTRODES[i] for i in np.flatnonzero(w_p >= 0.5 * w_p.max()))
    elif not model.midline and dur >= 30 and rng.random() < 0.4:
        # some longer seizures recruit the homologous region of the other hemisphere late
        contra_s = float(rng.uniform(0.3, 0.6) * dur)
        w_c = rng.uniform(0.25, 0.45) * np.exp(-0.5 * (model.dist_mirror / 4.0) ** 2) * (w_soz == 0)
        spread_w += w_c[:, None] * smoothstep((ts[None, :] - contra_s) / 3.0)
        w = w + w_c
    ictal = np.empty((w.size, n), dtype=np.float32)
    for e in range(w.size):
        # each electrode's own slow amplitude fluctuation: bipolar channels are not scaled copies
        local = np.clip(1.0 + 0.15 * smooth_noise(rng, n, 0.5), 0.6, 1.4)
        ictal[e] = amp * spread_w[e] * local * rhythm[pad - lag[e]:pad - lag[e] + n]
    # low-voltage fast activity at the onset zone, about background amplitude
    if lvfa_s > 0:
        lv = narrowband(rng, 1, n, lvfa_hz, 2.5)[0]
        lv_env = smoothstep(ts / 0.5) * smoothstep((lvfa_s + 1.5 - ts) / 1.5)
        lv_amp = rng.uniform(0.6, 1.2) * model.bg_bipolar_uV / delta_soz
        ictal += (lv_amp * w_soz[:, None] * (lv_env * lv)[None, :]).astype(np.float32)
    # the jitters above may stack: keep the largest bipolar discharge within ICTAL_PEAK_UV so
    # that background and artifacts on top never reach the amplifier's range
    top = float(np.abs(g.bipolar.astype(np.float32) @ ictal).max())
    if top > ICTAL_PEAK_UV:
        ictal *= ICTAL_PEAK_UV / top
        gain *= ICTAL_PEAK_UV / top

    a = int(round(true_on * SFREQ))
    b = min(a + n, n_total)
    # background attenuation (electrodecrement) at the onset zone: during low-voltage fast
    # activity (then recovering), or a milder one through the seizure
    if lvfa_s > 0:
        att = rng.uniform(0.4, 0.75) * (1.0 - smoothstep((ts - lvfa_s - 1.0) / 4.0))
    else:
        att = rng.uniform(0.0, 0.4) * np.ones(n)
    att *= smoothstep(ts / 0.5) * smoothstep((dur - ts) / 1.0)
    x[:, a:b] *= (1.0 - w_soz[:, None] * att[None, :b - a]).astype(np.float32)
    x[:, a:b] += ictal[:, :b - a]

    # seizures partly hidden under muscle artifact
    emg_s = None
    if under_emg:
        emg_s = float(rng.uniform(1.0, max(1.5, min(0.6 * dur, 12.0))))
        keys, amp_emg = draw_muscle(rng)
        amp_emg = max(amp_emg, rng.uniform(12.0, 40.0))
        k0 = a + int(emg_s * SFREQ)
        k1 = min(n_total, a + n + int(rng.uniform(0.0, 5.0) * SFREQ))
        if k1 - k0 > SFREQ // 2:
            m = k1 - k0
            tt = np.arange(m) / SFREQ
            env_emg = smoothstep(tt / 2.0) * smoothstep((m / SFREQ - tt) / 1.0)
            env_emg *= np.clip(1.0 + 0.4 * smooth_noise(rng, m, 0.5), 0.2, 2.0)
            x[:, k0:k1] += (amp_emg * muscle_weights(keys)[:, None] * emg(rng, m) * env_emg[None, :]).astype(np.float32)
        else:
            emg_s = None

    # post-ictal: decaying delta slowing and suppression where the seizure was (most seizures)
    post_tau = 0.0
    if rng.random() < 0.8:
        post_tau = float(style.post_tau_s * jit(0.3))
        end = min(n_total, a + n + int(4 * post_tau * SFREQ))
        if next_onset is not None:
            end = min(end, int(next_onset * SFREQ))
        m = end - (a + n)
        if m > SFREQ:
            tp = np.arange(m) / SFREQ
            decay = np.exp(-tp / post_tau) * smoothstep(tp / 1.0) * smoothstep((m / SFREQ - tp) / 2.0)
            supp = np.exp(-tp / post_tau) * smoothstep((m / SFREQ - tp) / 2.0)
            seg = x[:, a + n:end]
            wn = w / w.max()
            seg *= (1.0 - rng.uniform(0.2, 0.6) * wn[:, None] * supp[None, :]).astype(np.float32)
            slow = shaped_noise(rng, 1, m, lambda f: np.exp(-0.5 * ((f - 1.2) / 0.6) ** 2))[0]
            post_amp = style.post_gain * jit(0.3) * model.bg_bipolar_uV / max(g.max_bipolar(wn), 0.2)
            seg += (post_amp * wn[:, None] * (decay * slow)[None, :]).astype(np.float32)
        else:
            post_tau = 0.0

    on_s, off_s = mark(rng, true_on, true_off, duration_s, params)
    r = lambda v: None if v is None else round(float(v), 3)  # noqa: E731
    return SeizureTruth(
        onset_s=on_s, offset_s=off_s, true_onset_s=round(true_on, 3), true_offset_s=round(true_off, 3),
        morphology=morphology, band_hz=band, freq_start_hz=round(f0, 3), freq_end_hz=round(f1, 3),
        lvfa_s=round(lvfa_s, 3), lvfa_hz=round(lvfa_hz, 3), gain=round(gain, 3), spread_s=round(spread_s + lvfa_s, 3),
        propagation=prop_els, propagation_s=r(prop_s), contralateral_s=r(contra_s), emg_s=r(emg_s),
        postictal_s=round(post_tau, 3))
