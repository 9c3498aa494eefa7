"""The development PKI and its loopback TSA/OCSP/CRL responders (never for production paths).

``DevPki.create(dir)`` writes a root CA, an intermediate, author / repository / TSA certificates and a catalogue
of deliberately bad certificates for tests (see :data:`NAMES`); ``serve(pki)`` runs the RFC 3161 timestamp
authority, the OCSP responder and the CRLs on 127.0.0.1, with revocation at run time.
"""

from nuseal.devpki.pki import CA_NAMES, DEFAULT_HOST, NAMES, PFX_PASSWORD, DevPki
from nuseal.devpki.server import (
    MAX_GEN_TIME,
    MAX_REQUEST_BYTES,
    RESPONSE_LIFETIME,
    REVOCATION_REASONS,
    TSA_POLICY_OID,
    DevPkiServer,
    serve,
    timestamp_response,
)

__all__ = [
    "CA_NAMES",
    "DEFAULT_HOST",
    "MAX_GEN_TIME",
    "MAX_REQUEST_BYTES",
    "NAMES",
    "PFX_PASSWORD",
    "RESPONSE_LIFETIME",
    "REVOCATION_REASONS",
    "TSA_POLICY_OID",
    "DevPki",
    "DevPkiServer",
    "serve",
    "timestamp_response",
]
