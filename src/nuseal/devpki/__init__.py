"""The development PKI and its loopback TSA/OCSP/CRL responders (never for production paths).

``DevPki.create(dir)`` writes a root CA, an intermediate, author / repository / TSA certificates and a catalogue
of deliberately bad certificates for tests; ``serve(pki)`` runs the responders on 127.0.0.1.
"""

from nuseal.devpki.pki import NAMES, PFX_PASSWORD, DevPki
from nuseal.devpki.server import DevPkiServer, serve, timestamp_response

__all__ = ["NAMES", "PFX_PASSWORD", "DevPki", "DevPkiServer", "serve", "timestamp_response"]
