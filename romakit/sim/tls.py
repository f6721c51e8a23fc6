"""A throwaway certificate authority for the sandbox's MQTT-over-TLS listener.

:class:`SandboxTls` makes, at start-up, a CA and a server certificate signed by it for
``localhost``, ``127.0.0.1`` and ``::1`` (plus the bind host, if another), valid for a
few days, with ECDSA P-256 keys (a few milliseconds to make). The PEM files live in a
private temporary directory (mode 0700, the key file 0600) that :meth:`SandboxTls.close`
deletes. A client trusts the sandbox by loading :attr:`SandboxTls.ca_file`, exactly as
it would trust a real broker's CA, so the client's certificate and host-name checks
stay on. The CA's own key is never written anywhere: nothing else can be signed with it.

The private keys are never logged, shown in a repr or handed out except as the path
of the server key file that the broker's TLS listener loads.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path

#: how long the sandbox's certificates are valid (a sandbox runs for hours, not weeks)
VALID_DAYS = 7
#: the names every sandbox server certificate covers
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def _san(names: Iterable[str]) -> list:
    from cryptography import x509

    out: list = []
    seen: set[str] = set()
    for name in names:
        name = name.strip().strip("[]")
        if not name or name in seen or name in ("0.0.0.0", "::"):
            continue
        seen.add(name)
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


class SandboxTls:
    """A CA certificate plus a server certificate and key for the given host names, as PEM files.

    ``ca_file`` is what clients load to verify the server (``Gateway(..., tls=True,
    ca_file=...)``); ``cert_file`` / ``key_file`` are for the server. ``close()`` (or
    leaving a ``with`` block) deletes them; a closed instance cannot be used again.
    """

    def __init__(self, hosts: Iterable[str] = (), *, valid_days: int = VALID_DAYS) -> None:
        names = [*LOOPBACK_NAMES, *hosts]
        self.hosts = tuple(dict.fromkeys(n.strip().strip("[]") for n in names))
        self._dir: Path | None = Path(tempfile.mkdtemp(prefix="romakit-tls-"))
        try:
            os.chmod(self._dir, 0o700)
            self._make(names, valid_days)
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:  # paths of public files only, never key material
        state = f"ca_file={str(self.ca_file)!r}" if self._dir is not None else "closed"
        return f"SandboxTls(hosts={list(self.hosts)!r}, {state})"

    # -- files ------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        if self._dir is None:
            raise RuntimeError("the sandbox's TLS files were deleted (SandboxTls closed)")
        return self._dir / name

    @property
    def ca_file(self) -> Path:
        """The CA certificate (PEM) a client loads to verify the sandbox broker."""
        return self._path("ca.pem")

    @property
    def cert_file(self) -> Path:
        """The server certificate (PEM), followed by the CA certificate."""
        return self._path("server.pem")

    @property
    def key_file(self) -> Path:
        """The server's private key (PEM, mode 0600), for the broker's listener only."""
        return self._path("server-key.pem")

    @property
    def closed(self) -> bool:
        return self._dir is None

    def _make(self, names: list[str], valid_days: int) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        now = dt.datetime.now(dt.UTC)
        not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=valid_days)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "romakit sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, "romakit sandbox CA (throwaway)"),
        ])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(ca_ski, critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "romakit sandbox"),
                x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
            ]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                              encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        ca_pem = ca_cert.public_bytes(pem)
        self.ca_file.write_bytes(ca_pem)
        self.cert_file.write_bytes(cert.public_bytes(pem) + ca_pem)
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    # -- contexts ---------------------------------------------------------------------
    def server_context(self) -> ssl.SSLContext:
        """A TLS 1.2+ server context with the sandbox's certificate."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only the sandbox's CA."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    # -- life -------------------------------------------------------------------------
    def close(self) -> None:
        """Delete the certificate and key files. Safe to call twice."""
        d, self._dir = self._dir, None
        if d is not None:
            shutil.rmtree(d, ignore_errors=True)

    def __enter__(self) -> SandboxTls:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten sandbox must not leave key files behind
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


__all__ = ["SandboxTls", "LOOPBACK_NAMES", "VALID_DAYS"]
