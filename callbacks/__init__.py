"""Callbacks that hook the Trainer: kernel-wise iterative pruning (:mod:`callbacks.pruning`) and
ECAM / onset-map panels to PNG and W&B (:mod:`callbacks.activation_maps`, rendered by :mod:`callbacks.panels`)."""
