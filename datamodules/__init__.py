"""Data side: dataset sources -> Recording index -> montage + preprocessing -> HDF5 cache ->
windows / clips -> LOSO LightningDataModules. ``python -m datamodules inspect|synth|cache``."""
