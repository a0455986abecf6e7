"""An ``asr-worker`` whose resampling is the former pure-Python linear one (bench/asr_resample.py
compares it with the shipped libsoxr one inside a worker). Same arguments as ``hotline.cli``."""

from __future__ import annotations

import sys

from hotline.cli import main
from voicemail import asr

if __name__ == "__main__":
    asr.resample = asr.resample_linear  # what transcribe_file calls for a rate the model refuses
    sys.exit(main())
