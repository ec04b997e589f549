"""TLS: how a client reaches City over TLS, and the channel target and credentials."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple, Union

import grpc

#: A PEM: its contents (bytes, or a str that starts with "-----BEGIN"), or a file path.
Pem = Union[bytes, str, "os.PathLike[str]"]


@dataclass(frozen=True)
class TLS:
    """TLS to City: ``UserClient(target, ..., tls=TLS(ca="ca.pem"))``.

    ``ca``: the CA that signed City's certificate (None: the system roots). ``cert`` and
    ``key``: a client certificate and its key, for mTLS (a City with ``--tls-client-ca``
    accepts only clients with a certificate from that CA). ``server_name``: the name City's
    certificate carries when it is not the target's host. Each PEM is its contents (bytes,
    or a str starting with ``-----BEGIN``) or a file path.
    """

    ca: Optional[Pem] = None
    cert: Optional[Pem] = None
    key: Optional[Pem] = None
    server_name: Optional[str] = None

    def credentials(self) -> grpc.ChannelCredentials:
        """The grpc channel credentials (reads the files now)."""
        cert, key = _pem(self.cert, "cert"), _pem(self.key, "key")
        if (cert is None) != (key is None):
            raise ValueError("TLS: a client certificate (cert=) needs its key (key=), and a key its certificate")
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca, "ca"), private_key=key, certificate_chain=cert)


def _pem(value: Optional[Pem], what: str) -> Optional[bytes]:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        return value.encode()
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"TLS {what}: expected PEM bytes, a PEM string or a file path; got {type(value).__name__}")
    with open(value, "rb") as f:
        return f.read()


Connection = Tuple[str, Optional[grpc.ChannelCredentials], List[Tuple[str, Union[str, int]]]]


def connection(target: str, tls: Optional[TLS], credentials: Optional[grpc.ChannelCredentials],
               options: List[Tuple[str, Union[str, int]]]) -> Connection:
    """The address, credentials (None: plaintext) and channel options for a target.

    ``https://host:port`` or a ``tls``/``credentials`` argument means TLS (system roots unless
    ``tls.ca``); ``http://host:port`` and a bare ``host:port`` without them mean plaintext.
    """
    if tls is not None and credentials is not None:
        raise ValueError("give tls= or credentials=, not both")
    address, scheme = _split_scheme(target)
    if scheme == "http" and (tls is not None or credentials is not None):
        raise ValueError(f"{target!r} is plaintext (http://) but TLS was asked for: use https:// or host:port")
    if tls is not None:
        credentials = tls.credentials()
        if tls.server_name:
            options = [*options, ("grpc.ssl_target_name_override", tls.server_name),
                       ("grpc.default_authority", tls.server_name)]
    elif scheme == "https" and credentials is None:
        credentials = grpc.ssl_channel_credentials()
    return address, credentials, options


def _split_scheme(target: str) -> Tuple[str, str]:
    for scheme in ("https", "http"):
        prefix = scheme + "://"
        if target.startswith(prefix):
            return target[len(prefix):].rstrip("/"), scheme
    return target, ""
