"""The ground floor: shared EEG vocabulary that every other package may import (and that imports
none of them): channel names and montages (:mod:`eeg.montage`), head geometry (:mod:`eeg.head`)."""
