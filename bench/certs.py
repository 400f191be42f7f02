"""A throw-away test CA (trustme) and a 127.0.0.1/localhost certificate for the sandbox.

The CA file handed to every client is certifi's public bundle with the test CA
appended: a client that loads its trust store per connection pays what it would
pay in production, where the store is a full public bundle, not one certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import certifi
import trustme


@dataclass(frozen=True)
class CertFiles:
    ca_bundle: (
        Path  # certifi's bundle plus the test CA (SSL_CERT_FILE, REQUESTS_CA_BUNDLE)
    )
    cert: Path  # the sandbox's certificate chain
    key: Path  # its private key

    def client_env(self) -> dict[str, str]:
        """What points a client process at the bundle (the gateway honours both)."""
        bundle = str(self.ca_bundle)
        return {"SSL_CERT_FILE": bundle, "REQUESTS_CA_BUNDLE": bundle}


def make_certs(directory: Path) -> CertFiles:
    """Mint a CA and a server certificate into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    # copilot.microsoft.com: peers (--peers) resolve it to the sandbox and check it.
    server = ca.issue_cert("127.0.0.1", "localhost", "copilot.microsoft.com")
    files = CertFiles(
        directory / "ca-bundle.pem", directory / "cert.pem", directory / "key.pem"
    )
    public = Path(certifi.where()).read_bytes()
    files.ca_bundle.write_bytes(public.rstrip(b"\n") + b"\n" + ca.cert_pem.bytes())
    files.cert.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(files.key))
    return files
