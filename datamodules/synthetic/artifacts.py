"""Artifacts and non-seizure events, the things that fool amplitude and line-length rules.

* Eye blinks (frontal, cornea-positive, eyes open) and lateral eye movements (opposite
  deflections at F7/F8); slow roving eye movements in drowsiness.
* Muscle (EMG, 20-100 Hz, independent per electrode): bursts of seconds, temporal or frontal,
  sometimes bilateral and large; chewing (1-2 Hz trains of bilateral temporal bursts).
* Movement: large irregular slow swings on every electrode, each with its own gain (they do not
  cancel in bipolar channels), with muscle on top.
* Electrode pops (a step and exponential decay on one electrode) and a bad electrode that turns
  noisy or drifts for minutes. Pops and large movements are the only things that may saturate
  the amplifier.
* Hard negatives, kept 20 s before and 40 s after seizures: short rhythmic bursts (2-8 Hz,
  generalized or regional, the onset zone included), interictal spike-and-wave at the onset
  zone, isolated or in 1-4 s runs.

Rates are events per hour of the state they need (eyes open for blinks, awake for muscle...),
scaled by the patient's artifact proneness and the ``artifacts`` knob.
"""
from __future__ import annotations

import numpy as np

from .params import GenerationParams
from .physiology import PatientModel, Vigilance
from .primitives import (
    ELECTRODES,
    SFREQ,
    add,
    band_noise,
    discharge,
    geometry,
    poisson_times,
    shaped_noise,
    smooth_noise,
    smoothstep,
    tukey,
)
from .truth import EventTruth

#: Hard negatives stay this far (s) before and after true seizures so that the truth stays clean.
HARD_NEGATIVE_GUARD_S = (20.0, 40.0)

#: Muscle groups: electrode -> relative EMG amplitude.
MUSCLE_SITES = {
    "left": {"FT9": 1.0, "T7": 0.9, "F7": 0.7, "P7": 0.3},
    "right": {"FT10": 1.0, "T8": 0.9, "F8": 0.7, "P8": 0.3},
    "frontal": {"FP1": 0.8, "FP2": 0.8, "F7": 0.4, "F8": 0.4, "F3": 0.2, "F4": 0.2},
}


def muscle_weights(keys) -> np.ndarray:
    g = geometry()
    w = np.zeros(len(ELECTRODES))
    for key in keys:
        for e, v in MUSCLE_SITES[key].items():
            w[g.index[e]] = max(w[g.index[e]], v)
    return w


def emg(rng: np.random.Generator, k: int) -> np.ndarray:
    """Unit-variance muscle activity, independent per electrode, (n_electrodes, k)."""
    return shaped_noise(rng, len(ELECTRODES), k,
                        lambda f: 1.0 / (1.0 + (20.0 / np.maximum(f, 1e-3)) ** 6) / (1.0 + (f / 90.0) ** 4))


def draw_muscle(rng: np.random.Generator) -> tuple[list[str], float]:
    """Where a muscle burst is and how large (uV RMS at its strongest electrode)."""
    keys = [["left"], ["right"], ["left", "right"], ["frontal"], ["left", "right", "frontal"]][
        int(rng.choice(5, p=[0.27, 0.27, 0.2, 0.16, 0.1]))]
    amp = float(np.exp(rng.normal(np.log(11.0), 0.55)))
    if rng.random() < 0.2:  # some bursts are large
        amp *= rng.uniform(2.0, 4.5)
    return keys, amp


def add_artifacts(rng: np.random.Generator, x: np.ndarray, model: PatientModel, vig: Vigilance,
                  seizures: list[tuple[float, float]], params: GenerationParams) -> list[EventTruth]:
    """Write artifacts and hard negatives into electrode signals ``x`` (in place); their truth."""
    g = geometry()
    phys = model.phys
    n = x.shape[1]
    T = n / SFREQ
    rate = {kind: params.rate(kind) * phys.rate_scale for kind, _ in params.rates}
    events: list[EventTruth] = []
    names = np.array(ELECTRODES)

    def eyes_open(t, d):
        return vig.at("closed", t) < 0.5

    def drowsy(t, d):
        return vig.at("drowsy", t) > 0.5

    def awake_mostly(t, d):
        # muscle, chewing and movement: when awake, and a fifth as often in drowsiness and sleep
        return rng.random() < vig.at("awake", t) + 0.2 * (1.0 - vig.at("awake", t))

    def anywhere(t, d):
        return True

    lo_guard, hi_guard = HARD_NEGATIVE_GUARD_S

    def clear_of_seizures(t, d):
        return all(t + d < on - lo_guard or t > off + hi_guard for on, off in seizures)

    def record(kind, t, d, weights, thresh=0.3):
        w = np.abs(weights)
        els = tuple(str(e) for e in names[w >= thresh * w.max()])
        events.append(EventTruth(kind, round(t, 4), round(d, 4), els))

    # eye blinks: cornea-positive deflection at FP1/FP2, ~0.3-0.5 s
    for t, d in poisson_times(rng, rate["blink"], T, eyes_open, lambda: rng.uniform(0.3, 0.5)):
        k = int(d * SFREQ)
        rise = int(k * 0.35)
        shape = np.concatenate([0.5 - 0.5 * np.cos(np.linspace(0, np.pi, rise)),
                                0.5 + 0.5 * np.cos(np.linspace(0, np.pi, k - rise))])
        add(x, int(t * SFREQ), model.blink, rng.uniform(70.0, 220.0) * shape)
        record("blink", t, d, model.blink)
    # lateral eye movements: opposite deflections at F7 and F8, held 0.5-2 s
    for t, d in poisson_times(rng, rate["eye_movement"], T, eyes_open, lambda: rng.uniform(0.6, 2.0)):
        k = int(d * SFREQ)
        ramp = smoothstep(np.arange(k) / (0.08 * SFREQ)) * smoothstep((k - np.arange(k)) / (0.08 * SFREQ))
        amp = rng.uniform(30.0, 80.0) * rng.choice([-1.0, 1.0])
        add(x, int(t * SFREQ), model.eye_lateral, amp * ramp)
        record("eye_movement", t, d, model.eye_lateral)
    # slow roving eye movements of drowsiness: 0.2-0.5 Hz lateral swings over seconds
    for t, d in poisson_times(rng, rate["slow_eye_movement"], T, drowsy, lambda: rng.uniform(3.0, 8.0)):
        k = int(d * SFREQ)
        tt = np.arange(k) / SFREQ
        wave = np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * tt + rng.uniform(0, 2 * np.pi)) * tukey(k, 0.5)
        add(x, int(t * SFREQ), model.eye_lateral, rng.uniform(30.0, 70.0) * wave)
        record("slow_eye_movement", t, d, model.eye_lateral)
    # muscle bursts of seconds, temporal or frontal, sometimes bilateral and large
    for t, d in poisson_times(rng, rate["muscle"], T, awake_mostly,
                              lambda: float(np.clip(np.exp(rng.normal(np.log(2.5), 0.7)), 0.5, 15.0))):
        k = int(d * SFREQ)
        keys, amp = draw_muscle(rng)
        w = muscle_weights(keys)
        env = tukey(k, 0.3) * np.clip(1.0 + 0.3 * smooth_noise(rng, k, 0.4), 0.3, 1.8)
        add(x, int(t * SFREQ), w, amp * emg(rng, k) * env[None, :])
        record("muscle", t, d, w)
    # chewing: 1-2 Hz trains of bilateral temporal muscle bursts
    for t, d in poisson_times(rng, rate["chewing"], T, awake_mostly, lambda: rng.uniform(3.0, 20.0)):
        k = int(d * SFREQ)
        w = muscle_weights(["left", "right"])
        f_chew = rng.uniform(1.0, 2.0)
        bursts = (np.sin(2 * np.pi * f_chew * np.arange(k) / SFREQ) > rng.uniform(0.0, 0.4)).astype(float)
        bursts = np.convolve(bursts, np.ones(8) / 8, mode="same")
        amp = float(np.exp(rng.normal(np.log(30.0), 0.4)))
        add(x, int(t * SFREQ), w, amp * emg(rng, k) * bursts[None, :])
        record("chewing", t, d, w)
    # movement: slow irregular swings on every electrode, each its own gain, with muscle on top
    for t, d in poisson_times(rng, rate["movement"], T, awake_mostly, lambda: rng.uniform(2.0, 15.0)):
        k = int(d * SFREQ)
        shared = band_noise(rng, 2, k, 0.3, 3.0)
        mix = rng.normal(0.0, 1.0, (len(ELECTRODES), 2)) * np.exp(0.4 * rng.standard_normal((len(ELECTRODES), 1)))
        own = band_noise(rng, len(ELECTRODES), k, 0.3, 4.0)
        swing = (mix @ shared + 0.6 * own) * tukey(k, 0.3)[None, :]
        amp = float(rng.uniform(25.0, 100.0))
        add(x, int(t * SFREQ), np.ones(len(ELECTRODES)), amp * swing)
        w = muscle_weights(["left", "right", "frontal"])
        add(x, int(t * SFREQ), w, rng.uniform(10.0, 35.0) * emg(rng, k) * tukey(k, 0.3)[None, :])
        record("movement", t, d, np.ones(len(ELECTRODES)))
    # electrode pops: a step with exponential decay on one electrode; rare ones saturate
    for t, d in poisson_times(rng, rate["pop"], T, anywhere, lambda: rng.uniform(0.5, 3.0)):
        k = int(d * SFREQ)
        e = int(rng.integers(len(ELECTRODES)))
        big = rng.random() < 0.05
        amp = rng.uniform(900.0, 2000.0) if big else float(np.exp(rng.normal(np.log(120.0), 0.5)))
        wave = rng.choice([-1.0, 1.0]) * amp * np.exp(-np.arange(k) / (d / 5.0 * SFREQ))
        w = np.zeros(len(ELECTRODES))
        w[e] = 1.0
        add(x, int(t * SFREQ), w, wave)
        record("pop", t, d, w)
    # a bad electrode: noisy (broadband, irregular) or drifting (slow sways) for minutes
    for t, d in poisson_times(rng, rate["bad_electrode"], T, anywhere, lambda: rng.uniform(60.0, 360.0)):
        k = int(d * SFREQ)
        e = int(rng.integers(len(ELECTRODES)))
        w = np.zeros(len(ELECTRODES))
        w[e] = 1.0
        env = tukey(k, 10.0 / d) * np.clip(1.0 + 0.5 * smooth_noise(rng, k, 5.0), 0.2, 2.0)
        if rng.random() < 0.5:
            noise = shaped_noise(rng, 1, k, lambda f: 1.0 / np.sqrt(1.0 + f / 5.0) / (1.0 + (f / 60.0) ** 4))[0]
            wave = rng.uniform(20.0, 60.0) * noise * env
        else:
            wave = rng.uniform(50.0, 150.0) * band_noise(rng, 1, k, 0.1, 1.5)[0] * env
        add(x, int(t * SFREQ), w, wave)
        record("bad_electrode", t, d, w)
    # hard negative: short high-amplitude rhythmic burst (2-8 Hz), generalized or regional
    for t, d in poisson_times(rng, rate["rhythmic_burst"], T, clear_of_seizures, lambda: rng.uniform(1.0, 5.0)):
        k = int(d * SFREQ)
        if rng.random() < 0.5:  # bilateral, frontal (FIRDA-like) or posterior predominant
            w = g.weights_near([str(rng.choice(["FZ", "PZ", "CZ"]))], rng.uniform(7.0, 10.0))
        else:  # regional, anywhere (the onset zone included)
            w = g.weights_near([ELECTRODES[int(rng.integers(len(ELECTRODES)))]], rng.uniform(3.0, 6.0))
        w = w * np.exp(0.3 * rng.standard_normal(w.size))
        f0 = rng.uniform(2.0, 8.0)
        fr = f0 * (1.0 + 0.06 * smooth_noise(rng, k, 0.3))
        ph = 2 * np.pi * np.cumsum(fr) / SFREQ + rng.uniform(0, 2 * np.pi)
        wave = np.sin(ph) + 0.3 * np.sin(2 * ph + rng.uniform(0, 2 * np.pi))
        wave *= np.clip(1.0 + 0.25 * smooth_noise(rng, k, 0.25), 0.5, 1.5)
        peak = min(rng.uniform(2.5, 6.0) * model.bg_bipolar_uV, 380.0)
        add(x, int(t * SFREQ), w, peak / max(g.max_bipolar(w), 0.2) * wave * tukey(k, 0.4))
        record("rhythmic_burst", t, d, w)
    # hard negatives: interictal spike-and-wave at the onset zone, isolated or in short runs
    w_ied = model.interictal
    delta_ied = max(g.max_bipolar(w_ied), 0.2)
    spike_ms = float(rng.uniform(10.0, 18.0))
    for kind, length in (("interictal_spike", lambda: 0.35), ("interictal_run", lambda: rng.uniform(1.0, 4.0))):
        for t, d in poisson_times(rng, rate[kind], T, clear_of_seizures, length):
            k = int(d * SFREQ)
            tt = np.arange(k) / SFREQ
            if kind == "interictal_spike":  # one spike and its after-going slow wave
                s = spike_ms / 1000.0
                wave = -np.exp(-0.5 * ((tt - 0.08) / s) ** 2) - 0.5 * np.exp(-0.5 * ((tt - 0.2) / 0.05) ** 2)
            else:
                f0 = rng.uniform(2.5, 4.0)
                ph = 2 * np.pi * f0 * tt + rng.uniform(0, 2 * np.pi)
                wave = discharge(ph, np.full(k, f0), np.full(k, 0.8), spike_ms) * tukey(k, 0.25)
            peak = min(rng.uniform(3.0, 6.0) * model.bg_bipolar_uV, 380.0)
            add(x, int(t * SFREQ), w_ied, peak / delta_ied * wave)
            record(kind, t, d, w_ied)
    return events
