"""Head geometry of the 10-20 system: electrode positions on MNE's standard head, where a
(bipolar) channel sits on the scalp, and the 2-D projection topomaps use."""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from eeg.montage import MontageError, canonical_electrode, channel_electrodes


@lru_cache(maxsize=1)
def electrode_positions() -> dict[str, np.ndarray]:
    """3-D head positions (m) of the 10-20 electrodes from MNE's ``standard_1020`` montage,
    keyed by canonical name."""
    import mne

    # MNE 1.13 renamed standard_1020 (deprecated) to colin27_1020; accept either.
    name = "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    pos = mne.channels.make_standard_montage(name).get_positions()["ch_pos"]
    return {canonical_electrode(k): np.asarray(v, dtype=float) for k, v in pos.items()}


@lru_cache(maxsize=1)
def _head_centre() -> np.ndarray:
    # Centre of MNE's sphere="eeglab": the mean of Fpz, Oz, T7 and T8.
    pos = electrode_positions()
    return np.array([pos[e] for e in ("FPZ", "OZ", "T7", "T8")]).mean(axis=0)


@lru_cache(maxsize=1)
def head_sphere() -> tuple[float, float, float, float]:
    """Head sphere for topomaps, as in the classic 10-20 diagram, in head-centred coordinates
    (see :func:`scalp_positions`).

    Centred like MNE's ``sphere="eeglab"`` (between Fpz, Oz, T7 and T8), with the outline at
    the nasion-inion level: the outer 10-20 ring (Fpz, F7, T7, P7, Oz, ...) lies 10 % of the
    nasion-inion arc above it, i.e. at 72 of 90 degrees, so at 0.8 of the outline radius. Outer
    chain channels (FP1-F7, T7-P7...) are then drawn inside the head, not on its outline.
    The centre is the origin: MNE clips the interpolated map to a circle about the origin, so an
    off-centre sphere would shift the colour disk off the head outline."""
    pos = electrode_positions()
    ring = float(np.abs([pos["T7"][0], pos["T8"][0], pos["FPZ"][1], pos["OZ"][1]]).mean())
    return 0.0, 0.0, 0.0, ring / 0.8


def scalp_positions(channels) -> np.ndarray:
    """3-D position (m) of each channel on the scalp, relative to the head centre of
    :func:`head_sphere`: an electrode's own; a bipolar channel's at the midpoint of its two
    electrodes on the scalp (angular midpoint seen from the head centre, at their mean distance
    from it; the chord midpoint would sit inside the head and be drawn too close to the centre
    of the topomap). Raises :class:`MontageError` for a channel with no 10-20 position.
    """
    pos = electrode_positions()
    centre = _head_centre()
    out = []
    for c in channels:
        els = channel_electrodes(c)
        if not els or any(e not in pos for e in els):
            raise MontageError(f"no 10-20 position for channel {c!r}")
        vecs = np.array([pos[e] - centre for e in els])
        norms = np.linalg.norm(vecs, axis=1)
        # Angular midpoint (bisector of the two directions) at the electrodes' mean radius.
        direction = (vecs / norms[:, None]).sum(axis=0)
        out.append(direction / max(np.linalg.norm(direction), 1e-12) * norms.mean())
    return np.asarray(out).reshape(-1, 3)


@lru_cache(maxsize=32)
def scalp_layout(channels: tuple[str, ...]):
    """An :class:`mne.Info` with a DigMontage placing each channel (see
    :func:`scalp_positions`), and the head sphere; pass both to ``mne.viz.plot_topomap``."""
    import mne

    xyz = scalp_positions(channels)
    info = mne.create_info(list(channels), sfreq=1.0, ch_types="eeg")
    montage = mne.channels.make_dig_montage(ch_pos=dict(zip(channels, xyz)), coord_frame="head")
    info.set_montage(montage, on_missing="raise", verbose="error")
    return info, head_sphere()


def project_electrodes(electrodes, sphere=None) -> np.ndarray:
    """2-D topomap coordinates of electrodes, projected as MNE projects sensors in
    ``plot_topomap`` (azimuthal equidistant about the sphere centre, radius scaled by the
    point's distance); electrodes with no 10-20 position are skipped."""
    known = [e for e in electrodes if e in electrode_positions()]
    return _project(scalp_positions(known), head_sphere() if sphere is None else sphere)


def _project(xyz: np.ndarray, sphere) -> np.ndarray:
    # Mirrors mne.channels.layout._auto_topomap_coords(to_sphere=True); tests check the match.
    v = xyz - np.asarray(sphere[:3])
    r = np.linalg.norm(v, axis=1)
    polar = np.arccos(np.clip(v[:, 2] / np.maximum(r, 1e-12), -1, 1))
    azimuth = np.arctan2(v[:, 1], v[:, 0])
    rho = polar * r / (math.pi / 2)
    return np.column_stack([rho * np.cos(azimuth), rho * np.sin(azimuth)]) + np.asarray(sphere[:2])
