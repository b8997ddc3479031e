"""Event vocabularies: BIDS-score event types and how each dataset's own labels map to them."""
from __future__ import annotations

#: The BIDS-score event types (HED-SCORE seizure classification, ILAE 2017), as the SzCORE
#: ``events.json`` lists them: ``bckg`` and every seizure type.
EVENT_TYPES: frozenset[str] = frozenset("""
bckg sz sz_foc sz_foc_a sz_foc_a_m sz_foc_a_m_automatisms sz_foc_a_m_atonic sz_foc_a_m_clonic
sz_foc_a_m_spasms sz_foc_a_m_hyperkinetic sz_foc_a_m_myoclonic sz_foc_a_m_tonic sz_foc_a_nm
sz_foc_a_nm_autonomic sz_foc_a_nm_behavior sz_foc_a_nm_cognitive sz_foc_a_nm_emotional
sz_foc_a_nm_sensory sz_foc_a_um sz_foc_ia sz_foc_ia_m sz_foc_ia_m_automatisms sz_foc_ia_m_atonic
sz_foc_ia_m_clonic sz_foc_ia_m_spasms sz_foc_ia_m_hyperkinetic sz_foc_ia_m_myoclonic
sz_foc_ia_m_tonic sz_foc_ia_nm sz_foc_ia_nm_autonomic sz_foc_ia_nm_behavior sz_foc_ia_nm_cognitive
sz_foc_ia_nm_emotional sz_foc_ia_nm_sensory sz_foc_ia_um sz_foc_ua_m sz_foc_ua_m_automatisms
sz_foc_ua_m_atonic sz_foc_ua_m_clonic sz_foc_ua_m_spasms sz_foc_ua_m_hyperkinetic
sz_foc_ua_m_myoclonic sz_foc_ua_m_tonic sz_foc_ua_nm sz_foc_ua_nm_autonomic sz_foc_ua_nm_behavior
sz_foc_ua_nm_cognitive sz_foc_ua_nm_emotional sz_foc_ua_nm_sensory sz_foc_ua_um sz_foc_f2b sz_gen
sz_gen_m sz_gen_m_tonicClonic sz_gen_m_clonic sz_gen_m_tonic sz_gen_m_myoTC sz_gen_m_myoAtonic
sz_gen_m_atonic sz_gen_m_spasms sz_gen_nm sz_gen_nm_typical sz_gen_nm_atypical sz_gen_nm_myoclonic
sz_gen_nm_eyelidMyio sz_uo sz_uo_m sz_uo_m_tonicClonic sz_uo_m_spasms sz_uo_nm sz_uo_nm_behavior
""".split())
SEIZURE_TYPES = EVENT_TYPES - {"bckg"}

#: TUSZ labels (``.csv_bi`` and per-channel ``.csv``) -> BIDS-score (as the SzCORE converter maps them).
TUSZ_TYPES: dict[str, str] = {
    "seiz": "sz", "fnsz": "sz_foc", "gnsz": "sz_gen", "spsz": "sz_foc_a", "cpsz": "sz_foc_ia",
    "absz": "sz_gen_nm", "tnsz": "sz_gen_m_tonic", "cnsz": "sz_gen_m_clonic",
    "tcsz": "sz_gen_m_tonicClonic", "atsz": "sz_gen_m_atonic", "mysz": "sz_gen_nm_myoclonic",
}
#: TUSZ labels that are not seizures.
TUSZ_BACKGROUND = frozenset({"bckg"})

#: Siena ``subject_info.csv`` seizure classes -> BIDS-score.
SIENA_TYPES: dict[str, str] = {"IAS": "sz_foc_ia", "WIAS": "sz_foc_a", "FBTC": "sz_foc_f2b"}

#: SeizeIT annotation types -> BIDS-score.
SEIZEIT_TYPES: dict[str, str] = {"FIA": "sz_foc_ia", "FA": "sz_foc_a", "F-BTC": "sz_foc_f2b"}


def reverse(mapping: dict[str, str], event_type: str, default: str) -> str:
    """The dataset label of a BIDS-score type (the closest parent type that has one)."""
    back = {v: k for k, v in mapping.items()}
    t = event_type
    while t:
        if t in back:
            return back[t]
        t = t.rpartition("_")[0]
    return default
