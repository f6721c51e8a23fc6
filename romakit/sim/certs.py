"""X.509 device certificates for the sandbox: a throwaway device CA, and the fingerprint
registered per device, which the broker checks at login as IoTDA does.

:meth:`DeviceCertificates.issue` makes a client certificate for a device (ECDSA P-256,
signed by the device CA, whose key stays in memory and is never written) and, unless
``register=False``, registers its SHA-256 fingerprint on the device: from then on that
device logs in with the certificate only (IoTDA's ``auth_type`` ``CERTIFICATES``), a
secret is refused. The broker's TLS listeners ask for a client certificate and trust
:attr:`ca_file` for it; a certificate from elsewhere fails the TLS handshake, one from
this CA with another fingerprint is refused with CONNACK 4.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path


class DeviceCertificates:
    """The device CA, the issued certificates' files and the registered fingerprints."""

    def __init__(self, valid_days: int = 7) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._dir: Path | None = Path(tempfile.mkdtemp(prefix="romakit-devcerts-"))
        os.chmod(self._dir, 0o700)
        self._lock = threading.Lock()
        self._fingerprints: dict[str, str] = {}
        self._valid = dt.timedelta(days=valid_days)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "romakit sandbox device CA (throwaway)")])
        now = dt.datetime.now(dt.UTC)
        self._ca = (x509.CertificateBuilder().subject_name(self._name).issuer_name(self._name)
                    .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + self._valid)
                    .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                    .sign(self._key, hashes.SHA256()))
        self.ca_file.write_bytes(self._ca.public_bytes(serialization.Encoding.PEM))

    def __repr__(self) -> str:
        return f"DeviceCertificates({len(self._fingerprints)} registered)"

    @property
    def ca_file(self) -> Path:
        """The device CA certificate (PEM) the broker verifies client certificates with."""
        if self._dir is None:
            raise RuntimeError("device certificates closed")
        return self._dir / "device-ca.pem"

    def issue(self, device_id: str, *, register: bool = True) -> tuple[str, str]:
        """``(certfile, keyfile)`` of a new certificate for ``device_id`` (CN = the id)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
                .issuer_name(self._name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + self._valid)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(self._key, hashes.SHA256()))
        with self._lock:
            n = len(list(self.ca_file.parent.iterdir()))
            cert_path, key_path = self.ca_file.parent / f"{device_id}-{n}.pem", self.ca_file.parent / f"{device_id}-{n}.key"
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
            if register:
                self._fingerprints[device_id] = fingerprint(cert.public_bytes(serialization.Encoding.DER))
        return str(cert_path), str(key_path)

    def register(self, device_id: str, fp: str) -> None:
        """Register a fingerprint (SHA-256 or SHA-1 hex of the DER certificate) on a device."""
        with self._lock:
            self._fingerprints[device_id] = fp.replace(":", "").lower()

    def fingerprint_of(self, device_id: str) -> str | None:
        """The fingerprint registered on ``device_id`` (None: it logs in with its secret)."""
        with self._lock:
            return self._fingerprints.get(device_id)

    def matches(self, device_id: str, der: bytes | None) -> bool:
        """Whether the DER certificate ``der`` is the one registered on ``device_id``."""
        want = self.fingerprint_of(device_id)
        if not want or not der:
            return False
        got = hashlib.sha1(der).hexdigest() if len(want) == 40 else fingerprint(der)  # noqa: S324 - IoTDA's SHA-1 form
        return got == want

    def close(self) -> None:
        d, self._dir = self._dir, None
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)


def fingerprint(der: bytes) -> str:
    """IoTDA's certificate fingerprint: lower-case hex SHA-256 of the DER certificate."""
    return hashlib.sha256(der).hexdigest()


__all__ = ["DeviceCertificates", "fingerprint"]
