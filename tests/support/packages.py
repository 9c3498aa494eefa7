"""Package builders for every test area: nuspec documents and unsigned .nupkg files made on the fly.

One place writes the ZIP and the nuspec; the area helpers (``feed/conftest.py``'s ``make_package``,
``client/gate_support.py``'s and ``scan/scan_support.py``'s ``make_nupkg``, ``client/restore_support.py``'s
``package``, ``sign/conftest.py``'s ``unsigned_package``) call these with their own defaults.

Layout references: NuGet's ``nuget pack`` output (``_rels/.rels``, the nuspec at the root, ``[Content_Types].xml``
last) for :func:`make_package`; the nuspec schema namespace ``http://schemas.microsoft.com/packaging/2013/05/
nuspec.xsd``. Nothing here imports ``nuseal``: the builders are independent of the code under test.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable, Mapping

__all__ = ["NUSPEC_NAMESPACE", "XML_DECLARATION", "make_package", "nupkg", "nuspec_xml"]

NUSPEC_NAMESPACE = "http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'
_RELS = b'<?xml version="1.0" encoding="utf-8"?><Relationships/>'
_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="utf-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="nuspec" ContentType="application/octet"/></Types>'
)

Entries = Mapping[str, bytes | str] | Iterable[tuple[str, bytes | str]]


def nuspec_xml(
    package_id: str,
    version: str,
    *,
    description: str = "A test package",
    authors: str = "nuseal tests",
    extra_metadata: str = "",
    namespace: str | None = NUSPEC_NAMESPACE,
    declaration: str | None = XML_DECLARATION,
    compact: bool = False,
) -> bytes:
    """A nuspec (UTF-8) with id, version, authors, description and ``extra_metadata`` (raw XML inside
    ``<metadata>``). ``namespace=None`` writes ``<package>`` without one (as older tools did), ``declaration=None``
    no XML declaration; ``compact`` writes the elements on one line, right after the declaration as given."""
    package = f'<package xmlns="{namespace}">' if namespace else "<package>"
    if compact:
        return (
            f"{declaration or ''}{package}<metadata><id>{package_id}</id><version>{version}</version>"
            f"<authors>{authors}</authors><description>{description}</description>{extra_metadata}</metadata></package>"
        ).encode()
    return (
        f"{declaration + chr(10) if declaration else ''}{package}\n"
        "  <metadata>\n"
        f"    <id>{package_id}</id>\n"
        f"    <version>{version}</version>\n"
        f"    <authors>{authors}</authors>\n"
        f"    <description>{description}</description>\n"
        f"{extra_metadata}"
        "  </metadata>\n"
        "</package>\n"
    ).encode()


def nupkg(entries: Entries, *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A ZIP of ``entries`` (name -> content, in order; ``str`` content is UTF-8 encoded)."""
    items = entries.items() if isinstance(entries, Mapping) else entries
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, content in items:
            z.writestr(name, content.encode("utf-8") if isinstance(content, str) else content)
    return buf.getvalue()


def make_package(
    package_id: str,
    version: str,
    *,
    nuspec: bytes | None = None,
    files: Mapping[str, bytes] | None = None,
    payload_size: int = 0,
    **nuspec_kwargs: str,
) -> bytes:
    """A minimal valid .nupkg as ``nuget pack`` lays it out: ``_rels/.rels``, the nuspec (``nuspec``, else
    :func:`nuspec_xml` with ``nuspec_kwargs``), ``lib/netstandard2.0/<id>.dll``, ``payload_size`` incompressible
    bytes in ``content/payload.bin`` (stored), ``files``, then ``[Content_Types].xml``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("_rels/.rels", _RELS)
        z.writestr(
            f"{package_id}.nuspec", nuspec if nuspec is not None else nuspec_xml(package_id, version, **nuspec_kwargs)
        )
        z.writestr(f"lib/netstandard2.0/{package_id}.dll", f"assembly of {package_id} {version}".encode())
        if payload_size:
            z.writestr("content/payload.bin", os.urandom(payload_size), compress_type=zipfile.ZIP_STORED)
        for name, data in (files or {}).items():
            z.writestr(name, data)
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
    return buf.getvalue()
