"""Per-patient physiology and the background EEG: 1/f activity, alpha, drowsiness and sleep.

* Background: 1/f^beta noise sources at the electrodes mixed by a Gaussian distance kernel
  (volume conduction: neighbours correlate, so bipolar channels are smaller than referential
  ones), a slowly varying amplitude, amplifier noise and, in some patients, 60 Hz.
* Awake: a posterior alpha rhythm that waxes and wanes and is blocked (not abolished) when the
  eyes are open.
* Drowsy: alpha drops out, diffuse theta, vertex waves.
* Asleep (N2): diffuse high-amplitude delta (frontal predominant), sleep spindles (12-14 Hz,
  central), vertex waves and K-complexes (frontocentral, often followed by a spindle).

Patients differ in background amplitude and spectrum, alpha frequency and amplitude, how much
they sleep, and electrode impedances.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eeg.montage import DOUBLE_BANANA

from .params import GenerationParams
from .primitives import (
    ELECTRODES,
    SFREQ,
    add,
    geometry,
    narrowband,
    poisson_times,
    shaped_noise,
    smooth_noise,
    tukey,
)
from .truth import EventTruth, StateTruth

STATES = ("awake", "drowsy", "asleep")
#: Electrodes at which the diffuse delta of sleep has its (independent) sources.
DELTA_SOURCES = ("FP1", "FP2", "F7", "F3", "FZ", "F4", "F8", "C3", "CZ", "C4", "P3", "P4")


@dataclass(frozen=True)
class Physiology:
    """Per-patient background parameters (drawn once per patient)."""

    bg_uV: float  # referential RMS of the 1/f background
    beta: float  # spectral exponent of the background (power ~ 1/f^beta)
    mix_cm: float  # width of the volume-conduction kernel
    alpha_hz: float
    alpha_uV: float
    eyes_closed_fraction: float
    line_uV: float  # 60 Hz amplitude (0 for most patients)
    electrode_gain: tuple[float, ...]  # impedance / skull differences
    sleep_fraction: float  # share of time drowsy or asleep
    theta_uV: float  # diffuse theta of drowsiness
    delta_uV: float  # diffuse delta of sleep
    spindle_hz: float
    rate_scale: float  # how artifact-prone the patient is


def draw_physiology(rng: np.random.Generator, params: GenerationParams) -> Physiology:
    bg = float(np.exp(rng.normal(np.log(18.0), 0.25)))
    return Physiology(
        bg_uV=float(np.clip(bg, 11.0, 32.0)),
        beta=float(rng.uniform(1.8, 2.3)),
        mix_cm=float(rng.uniform(3.5, 4.5)),
        alpha_hz=float(rng.uniform(8.0, 11.0)),
        alpha_uV=float(rng.uniform(10.0, 35.0)),
        eyes_closed_fraction=float(rng.uniform(0.3, 0.6)),
        line_uV=float(rng.uniform(1.0, 4.0)) if rng.random() < 0.4 else 0.0,
        electrode_gain=tuple(float(g) for g in np.exp(0.22 * rng.standard_normal(len(ELECTRODES)))),
        sleep_fraction=float(rng.uniform(*params.sleep)),
        theta_uV=float(rng.uniform(8.0, 18.0)),
        delta_uV=float(rng.uniform(12.0, 30.0)),
        spindle_hz=float(rng.uniform(12.0, 14.0)),
        rate_scale=float(np.exp(0.3 * rng.standard_normal())),
    )


class Vigilance:
    """Awake / drowsy / asleep periods of one recording, with smooth envelopes per sample."""

    def __init__(self, rng: np.random.Generator, n: int, phys: Physiology):
        self.n = n
        self.periods: list[StateTruth] = []
        s = phys.sleep_fraction
        t = 0.0
        total = n / SFREQ
        # cycles: awake, drowsy, (asleep, drowsy); the mean awake time sets the share of sleep
        asleep_mean, drowsy_mean = 420.0, 70.0
        other = drowsy_mean + 0.7 * (asleep_mean + 40.0)
        awake_mean = other * (1.0 - s) / s if s > 0 else np.inf
        state = "awake" if s == 0 or rng.random() > s else str(rng.choice(["drowsy_in", "asleep"]))
        while t < total:
            if state == "awake":
                d, nxt = (total if not np.isfinite(awake_mean) else rng.exponential(awake_mean) + 30.0), "drowsy_in"
            elif state == "drowsy_in":
                d, nxt = rng.uniform(30.0, 110.0), ("asleep" if rng.random() < 0.7 else "awake")
            elif state == "asleep":
                d, nxt = rng.exponential(asleep_mean) + 90.0, "drowsy_out"
            else:  # drowsy on the way out of sleep
                d, nxt = rng.uniform(20.0, 60.0), "awake"
            d = float(min(d, total - t))
            self.periods.append(StateTruth(state.split("_")[0], round(t, 3), round(d, 3)))
            t += d
            state = nxt
        # per-sample envelopes, with 5 s transitions
        self.level = {k: np.zeros(n, dtype=np.float32) for k in STATES}
        for p in self.periods:
            a, b = int(p.onset_s * SFREQ), int((p.onset_s + p.duration_s) * SFREQ)
            self.level[p.state][a:b] = 1.0
        k = 5 * SFREQ
        kernel = np.ones(k, dtype=np.float32) / k
        for key in STATES:
            if self.level[key].any() and not self.level[key].all():
                self.level[key] = np.convolve(self.level[key], kernel, mode="same").astype(np.float32)
        self.closed = self._eyes_closed(rng, phys.eyes_closed_fraction)

    def _eyes_closed(self, rng, fraction: float) -> np.ndarray:
        """0/1 eyes-closed state while awake as alternating dwell times, smoothed over 0.4 s;
        the eyes are closed when drowsy or asleep."""
        n = self.n
        state = np.zeros(n, dtype=np.float32)
        t, closed = 0, bool(rng.random() < fraction)
        while t < n:
            mean = 25.0 * (fraction if closed else 1.0 - fraction) / 0.5
            dwell = int(max(3.0, rng.exponential(mean)) * SFREQ)
            if closed:
                state[t:t + dwell] = 1.0
            t += dwell
            closed = not closed
        k = int(0.4 * SFREQ)
        state = np.convolve(state, np.ones(k, dtype=np.float32) / k, mode="same")
        awake = self.level["awake"]
        return (state * awake + (1.0 - awake)).astype(np.float32)

    def at(self, key: str, t_s: float) -> float:
        """Level of ``key`` (a state, or ``closed`` for the eyes) at ``t_s`` seconds."""
        i = min(max(int(t_s * SFREQ), 0), self.n - 1)
        return float(self.closed[i] if key == "closed" else self.level[key][i])


class PatientModel:
    """The fixed spatial patterns of one patient (onset zone, alpha, blinks, sleep fields)."""

    def __init__(self, phys: Physiology, soz: tuple[str, ...], soz_weights: tuple[float, ...]):
        g = geometry()
        self.phys = phys
        self.soz = soz
        self.w_soz = g.one_hot(soz, soz_weights)
        idx = [g.index[e] for e in soz]
        self.dist_soz = g.dist[:, idx].min(axis=1)
        self.dist_mirror = g.mirrored_distance(soz)
        self.midline = bool(np.all(np.abs(g.pos[idx, 0]) < 1.0))
        self.mixing = g.mixing(phys.mix_cm)
        cov = self.mixing @ self.mixing.T
        gain = np.asarray(phys.electrode_gain)
        bip_var = [gain[a] ** 2 * cov[a, a] + gain[b] ** 2 * cov[b, b] - 2 * gain[a] * gain[b] * cov[a, b]
                   for a, b in g.pairs[:18]]
        #: RMS of the 1/f background in a double-banana channel (the reference for "x background")
        self.bg_bipolar_uV = phys.bg_uV * float(np.mean(np.sqrt(bip_var)))
        self.alpha_left = np.exp(-0.5 * (g.dist[:, g.index["O1"]] / 4.5) ** 2)
        self.alpha_right = np.exp(-0.5 * (g.dist[:, g.index["O2"]] / 4.5) ** 2)
        # eye blinks: the cornea-positive eyes sit in front of FP1/FP2
        self.blink = np.exp(-np.minimum(g.dist[:, g.index["FP1"]], g.dist[:, g.index["FP2"]]) / 3.5)
        left = np.exp(-g.dist[:, g.index["F7"]] / 4.0)
        right = np.exp(-g.dist[:, g.index["F8"]] / 4.0)
        self.eye_lateral = left - right
        # sleep fields: frontal-predominant delta from three broad sources (left, right, midline)
        # (independent sources, so the field does not cancel in bipolar channels)
        self.delta = np.stack([g.weights_near([e], 4.5) for e in DELTA_SOURCES], axis=1)
        self.delta *= np.clip(1.0 + g.pos[:, 1] / 15.0, 0.4, 1.6)[:, None]  # frontal predominant
        self.theta = np.stack([g.weights_near([e], 8.0) for e in ("C3", "C4", "CZ")], axis=1)
        self.vertex = g.weights_near(["CZ"], 5.0)
        self.spindle = g.weights_near(["CZ", "C3", "C4"], 3.5)
        self.k_complex = g.weights_near(["FZ", "CZ"], 6.0)
        # electrodes of the double banana that share no channel with the zone: where a larger
        # propagated rhythm does not show in an onset-zone channel
        touching = {e for label in DOUBLE_BANANA if set(label.split("-")) & set(soz) for e in label.split("-")}
        self.propagation_sites = [g.index[e] for label in DOUBLE_BANANA for e in label.split("-")
                                  if e not in touching]
        self.propagation_sites = sorted(set(self.propagation_sites))
        near = np.exp(-0.5 * (self.dist_soz / 4.0) ** 2) * (self.w_soz == 0)
        self.interictal = self.w_soz + 0.2 * near


def background(rng: np.random.Generator, model: PatientModel, vig: Vigilance) -> np.ndarray:
    """Electrode signals (n_electrodes, n) in uV of the awake, drowsy and sleeping background."""
    phys = model.phys
    n = vig.n
    ne = len(ELECTRODES)

    def pink(f):
        # 1/f^beta power, high-passed at 0.4 Hz, rolled off above 45 Hz
        return (f ** 2 + 1.0) ** (-phys.beta / 4) * (f / np.sqrt(f ** 2 + 0.16)) / (1.0 + (f / 45.0) ** 4)

    src = shaped_noise(rng, ne, n, pink)
    gain = phys.bg_uV * np.asarray(phys.electrode_gain)
    x = ((model.mixing * gain[:, None]).astype(np.float32)) @ src
    del src
    x *= np.exp(0.15 * smooth_noise(rng, n, 20.0)).astype(np.float32)[None, :]  # slow amplitude drift
    awake, drowsy, asleep = vig.level["awake"], vig.level["drowsy"], vig.level["asleep"]
    # posterior alpha: one shared rhythm with some independence between hemispheres; blocked
    # (not abolished) when the eyes are open, gone in drowsiness and sleep
    a = narrowband(rng, 3, n, phys.alpha_hz, 0.45)
    a *= (phys.alpha_uV * (0.2 + 0.8 * vig.closed) * awake)[None, :]
    left, right = model.alpha_left, model.alpha_right
    x += (np.stack([left + right, 0.5 * left, 0.5 * right], axis=1) / np.sqrt(1.25)).astype(np.float32) @ a
    del a
    # diffuse theta: a little when awake, more in drowsiness
    th = narrowband(rng, 3, n, rng.uniform(4.5, 6.5), 0.9)
    th *= (phys.theta_uV * (0.6 * awake + drowsy + 0.5 * asleep))[None, :]
    x += model.theta.astype(np.float32) @ th
    del th
    if (drowsy > 0).any() or (asleep > 0).any():
        de = shaped_noise(rng, len(DELTA_SOURCES), n, lambda f: np.exp(-0.5 * ((f - 1.0) / 0.7) ** 2))
        depth = np.clip(1.0 + 0.35 * smooth_noise(rng, n, 30.0), 0.4, 1.8).astype(np.float32)
        de *= (phys.delta_uV * (asleep + 0.25 * drowsy) * depth)[None, :]
        x += model.delta.astype(np.float32) @ de
        del de
    x += rng.standard_normal((ne, n), dtype=np.float32)  # amplifier noise, 1 uV RMS
    if phys.line_uV > 0:
        amp = phys.line_uV * rng.uniform(0.0, 1.0, ne)
        ph = rng.uniform(0, 2 * np.pi, ne)
        wt = 2 * np.pi * 60.0 * np.arange(n) / SFREQ
        x += (np.stack([amp * np.cos(ph), amp * np.sin(ph)], axis=1)
              @ np.stack([np.sin(wt), np.cos(wt)])).astype(np.float32)
    return x


def sleep_graphoelements(rng: np.random.Generator, x: np.ndarray, model: PatientModel,
                         vig: Vigilance) -> list[EventTruth]:
    """Spindles, vertex waves and K-complexes of drowsiness and sleep, written into ``x``."""
    phys = model.phys
    T = vig.n / SFREQ
    events: list[EventTruth] = []
    names = np.array(ELECTRODES)

    def record(kind, t, d, w):
        els = tuple(str(e) for e in names[np.abs(w) >= 0.5 * np.abs(w).max()])
        events.append(EventTruth(kind, round(t, 4), round(d, 4), els))

    def spindle(t, d):
        k = int(d * SFREQ)
        tt = np.arange(k) / SFREQ
        f = phys.spindle_hz * (1.0 + 0.02 * rng.standard_normal())
        wave = np.sin(2 * np.pi * f * tt + rng.uniform(0, 2 * np.pi)) * np.hanning(k)
        add(x, int(t * SFREQ), model.spindle, rng.uniform(15.0, 40.0) * wave)
        record("spindle", t, d, model.spindle)

    def vertex(t):
        d = 0.4
        k = int(d * SFREQ)
        tt = np.arange(k) / SFREQ
        # sharp surface-negative wave (negative up in EEG convention: negative values here)
        wave = -np.exp(-0.5 * ((tt - 0.15) / 0.045) ** 2) + 0.35 * np.exp(-0.5 * ((tt - 0.27) / 0.05) ** 2)
        add(x, int(t * SFREQ), model.vertex, rng.uniform(50.0, 130.0) * wave)
        record("vertex_wave", t, d, model.vertex)

    def k_complex(t):
        d = float(rng.uniform(0.6, 1.0))
        k = int(d * SFREQ)
        tt = np.arange(k) / SFREQ
        wave = -np.exp(-0.5 * ((tt - 0.12 * d) / (0.06 * d)) ** 2) \
            + 0.8 * np.exp(-0.5 * ((tt - 0.45 * d) / (0.16 * d)) ** 2)
        wave -= wave.mean()
        add(x, int(t * SFREQ), model.k_complex, rng.uniform(90.0, 200.0) * wave * tukey(k, 0.1))
        record("k_complex", t, d, model.k_complex)
        if rng.random() < 0.5 and t + d + 1.5 < T:
            spindle(t + d, float(rng.uniform(0.5, 1.2)))

    for t, d in poisson_times(rng, 360.0, T, lambda t, d: vig.at("asleep", t) > 0.5, lambda: rng.uniform(0.5, 1.5)):
        spindle(t, d)
    for t, _ in poisson_times(rng, 150.0, T, lambda t, d: vig.at("drowsy", t) + vig.at("asleep", t) > 0.5,
                              lambda: 0.4):
        vertex(t)
    for t, _ in poisson_times(rng, 60.0, T, lambda t, d: vig.at("asleep", t) > 0.5, lambda: 1.0):
        k_complex(t)
    return events

