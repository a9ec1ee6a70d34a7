"""The cluster's certificates and keys, made with `cryptography` and kept in the state dir.

A CA signs the apiserver's serving certificate (SANs for loopback and `kubernetes.default.svc...`)
and one client certificate per component; the service-account key pair signs tokens. Files that
exist are kept, so restarts reuse them and kubeconfigs stay valid.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ClusterPKI"]

_VALIDITY = datetime.timedelta(days=3650)


class ClusterPKI:
    """Certificates under `folder`: `ca.crt`, `apiserver.crt`, `<client>.crt`, `sa.key`, `sa.pub`."""

    def __init__(self, folder: Path, service_ip: str) -> None:
        self.folder = folder
        self.service_ip = service_ip

    def ensure(self, clients: dict[str, Sequence[str]]) -> None:
        """Make what is missing: the CA, the serving cert, the SA keys and a client cert per
        `clients` entry (file stem -> (common name, *organisations))."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        if not (self.folder / "ca.crt").is_file():
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flyte-infra-devbox-ca")])
            certificate = (
                self._builder(name, name, key)
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
                )
                .sign(key, hashes.SHA256())
            )
            self._write("ca", key, certificate)
        if not (self.folder / "apiserver.crt").is_file():
            names = [
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ]
            addresses = ["127.0.0.1", self.service_ip]
            self._issue(
                "apiserver",
                "kube-apiserver",
                (),
                ExtendedKeyUsageOID.SERVER_AUTH,
                [x509.DNSName(n) for n in names]
                + [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses],
            )
        for stem, (common_name, *organisations) in clients.items():
            if not (self.folder / f"{stem}.crt").is_file():
                self._issue(stem, common_name, organisations, ExtendedKeyUsageOID.CLIENT_AUTH, [])
        if not (self.folder / "sa.key").is_file():
            sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            (self.folder / "sa.pub").write_bytes(
                sa_key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            self._write_key("sa", sa_key)

    def path(self, name: str) -> Path:
        return self.folder / name

    def _issue(
        self,
        stem: str,
        common_name: str,
        organisations: Sequence[str],
        usage: x509.ObjectIdentifier,
        alternative_names: list[x509.GeneralName],
    ) -> None:
        ca_key = serialization.load_pem_private_key((self.folder / "ca.key").read_bytes(), None)
        ca = x509.load_pem_x509_certificate((self.folder / "ca.crt").read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organisations]
        subject = x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        builder = (
            self._builder(subject, ca.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if alternative_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        self._write(stem, key, builder.sign(ca_key, hashes.SHA256()))

    @staticmethod
    def _builder(
        subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
    ) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
        )

    def _write(self, stem: str, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._write_key(stem, key)
        (self.folder / f"{stem}.crt").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))

    def _write_key(self, stem: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        path = self.folder / f"{stem}.key"
        path.touch(mode=0o600)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
