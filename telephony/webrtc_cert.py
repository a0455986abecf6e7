"""The WSS listener's demo certificate: a self-signed pair made at first start (Debian's
``openssl``), the key 0600 in a 0700 folder. Production names its own pair in config.yaml
(webrtc.cert_file / key_file); browsers trust a self-signed one only when told to."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from common.private_files import PRIVATE_FILE_MODE, private_dir

DEMO_DAYS = 825  # browsers refuse longer-lived server certificates


class CertificateError(RuntimeError):
    """The demo certificate could not be made (no openssl, or it failed)."""


def ensure_demo_certificate(cert: Path, key: Path, host: str) -> bool:
    """Make a self-signed certificate for ``host`` (plus localhost and 127.0.0.1) at ``cert`` and
    ``key`` unless both exist; True when one was made."""
    if cert.is_file() and key.is_file():
        return False
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertificateError(
            "no openssl to make the demo WSS certificate: apt-get install openssl, or set webrtc.cert_file"
        )
    private_dir(cert.parent)
    private_dir(key.parent)
    names = {"DNS:localhost", "IP:127.0.0.1"}
    names.add(f"IP:{host}" if host.replace(".", "").isdigit() else f"DNS:{host}")
    partial_key, partial_cert = key.with_suffix(".partial"), cert.with_suffix(".partial")
    command = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    command += ["-days", str(DEMO_DAYS), "-subj", "/CN=hotline12345 demo", "-keyout", str(partial_key)]
    command += ["-out", str(partial_cert), "-addext", "subjectAltName=" + ",".join(sorted(names))]
    old_umask = os.umask(0o077)  # the key is never readable by others, not even for a moment
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    finally:
        os.umask(old_umask)
    if done.returncode != 0:
        raise CertificateError(f"openssl could not make the demo WSS certificate: {done.stderr.strip()[-300:]}")
    partial_key.chmod(PRIVATE_FILE_MODE)
    partial_cert.chmod(PRIVATE_FILE_MODE)
    partial_key.replace(key)
    partial_cert.replace(cert)
    return True


def check_certificate(cert: Path, key: Path) -> None:
    """A configured pair (webrtc.cert_file / key_file) Asterisk can use and nobody else can read
    the key of: both files there, the key not readable by other users. CertificateError else."""
    for what, path in (("webrtc.cert_file", cert), ("webrtc.key_file", key)):
        if not path.is_file():
            raise CertificateError(f"{what}: {path} is not a file (the WSS listener would not start)")
    if key.stat().st_mode & 0o007:
        raise CertificateError(f"webrtc.key_file: {key} is readable by every user: chmod 0600 (or 0640) it")
