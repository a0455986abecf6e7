"""config.yaml's spool (message spool health) and asr (speech recognition) sections."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from common.config_model import ConfigModel


class SpoolConfig(ConfigModel):
    """Health of the message spool (paths.spool_dir): below this free space, or not writable, no
    caller is asked for a message (they are told, routed on and called back) and health is degraded."""

    min_free_mb: Annotated[float, Field(ge=0, le=1_000_000)] = 100.0  # a 2-minute message is about 2 MB
    check_interval_s: Annotated[float, Field(gt=0, le=3600)] = 10.0


class AsrConfig(ConfigModel):
    """Offline speech recognition of callers' messages (voicemail/asr.py, voicemail/jobs.py)."""

    # a vosk model folder: vosk-model-cn-0.22 or vosk-model-small-cn-0.22, unpacked. None: the
    # controller files tickets without transcripts (nothing waits for a worker that is not there)
    model_path: Path | None = None
    grammar: tuple[str, ...] = ()  # a closed vocabulary (tests); empty: free speech
    visibility_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 300.0  # a job's worker is presumed dead
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3  # then the job is parked for an operator
    rescan_interval_s: Annotated[float, Field(gt=0, le=3600)] = 60.0  # the spool is checked for orphans
    # younger files are left to the IVR; any value is safe (0 too): a message being recorded or
    # described is held from the rescan (MessageIntake.recording), a fallback one until its .done
    rescan_min_age_s: Annotated[float, Field(ge=0, le=86400)] = 300.0
