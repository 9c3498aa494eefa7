"""``Nuspec`` carries what the feed's rows and restore's resolver need (dependency groups as NuGet groups them,
``minClientVersion``, the license expression), so neither parses the XML a second time."""

from __future__ import annotations

import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

from nuseal.package import Nuspec

VECTORS = sorted((Path(__file__).resolve().parents[2] / "shared" / "vectors" / "nuget.org").glob("*.nupkg"))


def _nuspec(metadata: str, attrs: str = "") -> bytes:
    return (
        '<?xml version="1.0"?><package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd">'
        f"<metadata{attrs}><id>A</id><version>1.0.0</version><authors>x</authors><description>d</description>"
        f"{metadata}</metadata></package>"
    ).encode()


@pytest.mark.parametrize("path", VECTORS, ids=[p.name for p in VECTORS])
def test_dependency_groups_of_real_nuspecs(path: Path) -> None:
    """Read independently with ElementTree: the ``<group>`` elements of ``<dependencies>`` in order, each with its
    dependencies (``<frameworkReferences>`` has groups too: not dependencies)."""
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith(".nuspec") and "/" not in n)
        data = z.read(name)
    expected = []
    dependencies = [e for e in ElementTree.fromstring(data).iter() if e.tag.rpartition("}")[2] == "dependencies"]
    for el in (g for block in dependencies for g in block):
        if el.tag.rpartition("}")[2] == "group":
            deps = tuple((d.get("id"), d.get("version")) for d in el if d.tag.rpartition("}")[2] == "dependency")
            expected.append((el.get("targetFramework", ""), deps))
    assert list(Nuspec.parse(data, enforce_limits=False).dependency_groups) == expected


def test_groups_empty_groups_and_the_legacy_flat_form() -> None:
    grouped = Nuspec.parse(
        _nuspec(
            '<dependencies><group targetFramework="net45"/><group targetFramework=" netstandard2.0 ">'
            '<dependency id="B" version="[1.0,)"/></group><group><dependency id="C"/></group></dependencies>'
        )
    )
    assert grouped.dependency_groups == (("net45", ()), ("netstandard2.0", (("B", "[1.0,)"),)), ("", (("C", None),)))
    flat = Nuspec.parse(_nuspec('<dependencies><dependency id="B" version="2.0"/><dependency id="C"/></dependencies>'))
    assert flat.dependency_groups == (("", (("B", "2.0"), ("C", None))),)
    assert Nuspec.parse(_nuspec("<dependencies/>")).dependency_groups == ()
    # NuGet ignores plain <dependency> children once there is a <group> (NuspecReader.GetDependencyGroups)
    mixed = Nuspec.parse(
        _nuspec('<dependencies><dependency id="Old"/><group targetFramework="net45"><dependency id="B"/></group>'
                "</dependencies>")
    )
    assert mixed.dependency_groups == (("net45", (("B", None),)),)


def test_min_client_version_and_license_expression() -> None:
    parsed = Nuspec.parse(_nuspec('<license type="expression">MIT OR Apache-2.0</license>', ' minClientVersion="5.0"'))
    assert (parsed.min_client_version, parsed.license_expression) == ("5.0", "MIT OR Apache-2.0")
    plain = Nuspec.parse(_nuspec('<license type="file">LICENSE.txt</license>'))
    assert (plain.min_client_version, plain.license_expression) == ("", "")
