"""Look-alike package ids (nuseal.scan.lookalike): homoglyphs, typosquats, separator and suffix squats."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from nuseal.errors import ConfigError
from nuseal.scan.engine import ScanContext, Scanner
from nuseal.scan.lookalike import PopularIds, analysers, builtin_popular_ids, popular_index, skeleton
from nuseal.scan.model import Severity
from nuseal.scan.package import ScanPackage
from nuseal.scan.rules import load_rules

VECTORS = sorted((Path(__file__).resolve().parents[3] / "shared" / "vectors").glob("*/*.nupkg"))
CYRILLIC_O = "\u043e"
CYRILLIC_E = "\u0435"


def nupkg(package_id: str, version: str = "1.0.0") -> bytes:
    nuspec = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<package xmlns="http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"><metadata>'
        f"<id>{package_id}</id><version>{version}</version><authors>a</authors><description>d</description>"
        "</metadata></package>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("pkg.nuspec", nuspec.encode("utf-8"))
        z.writestr("lib/netstandard2.0/_._", b"")
    return buf.getvalue()


def scan_id(package_id: str, context: ScanContext | None = None) -> list[tuple[str, Severity]]:
    rules = load_rules()
    scanner = Scanner(rules, analysers=analysers(context or ScanContext()))
    report = scanner.scan(ScanPackage.from_bytes(nupkg(package_id), source="t.nupkg"))
    return [(f.rule_id, f.severity) for f in report.findings if f.rule_id.startswith("NS5")]


def test_cyrillic_newtonsoft_is_an_error_and_non_ascii() -> None:
    fake = f"Newtons{CYRILLIC_O}ft.Js{CYRILLIC_O}n"
    assert fake != "Newtonsoft.Json"
    found = scan_id(fake)
    assert ("NS5002", Severity.ERROR) in found
    assert ("NS5001", Severity.WARNING) in found
    [hit] = [h for h in popular_index().check(fake) if h.rule_id == "NS5002"]
    assert hit.target == "Newtonsoft.Json"


def test_ascii_confusable_capital_i_for_l() -> None:
    assert skeleton("SeriIog") == skeleton("Serilog")
    assert scan_id("SeriIog") == [("NS5002", Severity.ERROR)]


def test_homoglyph_plus_one_edit_is_still_found() -> None:
    found = popular_index().check(f"N{CYRILLIC_E}wtonsoft.Jsonn")
    assert found[0].rule_id == "NS5001"
    assert found[-1].rule_id == "NS5003"
    assert found[-1].target == "Newtonsoft.Json"


@pytest.mark.parametrize(
    "squat",
    [
        "Newtonsoft.Jsno",  # transposition
        "Newtonsft.Json",  # deletion
        "Newtonsoftt.Json",  # doubled letter
        "Newtonsofr.Json",  # substitution
        "Newtonsoft.Jsoon",  # doubled letter
        "AutoMaper",
        "Swashbuckle.AspNetCorre",
    ],
)
def test_one_letter_typosquats(squat: str) -> None:
    assert scan_id(squat) == [("NS5003", Severity.WARNING)]


@pytest.mark.parametrize("squat", ["Newtonsoft-Json", "NewtonsoftJson", "newtonsoft_json", "Serilog.Sinks-Console"])
def test_separator_squats(squat: str) -> None:
    assert scan_id(squat) == [("NS5004", Severity.WARNING)]


def test_suffix_squats() -> None:
    # A popular id without a family in the list: a suffix is a warning.
    index = PopularIds(["AvalonEdit", "Newtonsoft.Json", "Newtonsoft.Json.Bson"])
    [hit] = index.check("AvalonEdit.Net")
    assert (hit.rule_id, hit.target, hit.weak) == ("NS5005", "AvalonEdit", False)
    [hit] = index.check("AvalonEditCore")
    assert (hit.rule_id, hit.weak) == ("NS5005", False)
    # Newtonsoft.Json.* already has members: reported, one level lower.
    [hit] = index.check("Newtonsoft.Json.Net")
    assert (hit.rule_id, hit.weak) == ("NS5005", True)
    found = scan_id("Contoso.Widgets.Api", ScanContext(popular_ids=("Contoso.Widgets",)))
    assert found == [("NS5005", Severity.WARNING)]


def test_homoglyph_ids_are_judged_on_what_they_render_as() -> None:
    index = popular_index()
    for fake, rule in [
        (f"N{CYRILLIC_E}wtonsoft.Json.Net", "NS5005"),  # Newtonsoft.Json.* exists, yet no sibling uses Cyrillic
        (f"N{CYRILLIC_E}wtonsoft-Json", "NS5004"),
        (f"N{CYRILLIC_E}wtonsofft.Json", "NS5003"),
    ]:
        found = index.check(fake)
        assert [h.rule_id for h in found] == ["NS5001", rule], fake
        assert found[1].target == "Newtonsoft.Json" and not found[1].weak
        assert found[1].detail.startswith("renders like ")


def test_exact_popular_ids_any_case_are_not_lookalikes() -> None:
    index = popular_index()
    ids = builtin_popular_ids()
    assert len(ids) > 2500
    flagged = [pid for pid in ids if index.check(pid) or index.check(pid.upper()) or index.check(pid.lower())]
    assert flagged == []


def test_vector_packages_produce_nothing() -> None:
    assert len(VECTORS) >= 20
    rules = load_rules()
    scanner = Scanner(rules, analysers=analysers(ScanContext()))
    for path in VECTORS:
        report = scanner.scan(ScanPackage.from_bytes(path.read_bytes(), source=str(path)))
        assert report.package.id
        assert [f for f in report.findings if f.rule_id.startswith("NS5")] == [], path.name


def test_unrelated_and_short_ids_are_not_flagged() -> None:
    index = popular_index()
    for pid in ["Contoso.Billing.Internal", "Acme.Widgets", "Mog", "Xunit.Extensions.Ordering.Contoso"]:
        assert index.check(pid) == [], pid
    # a sibling that changes a whole word other popular ids use is not a typo (xunit / nunit)
    assert PopularIds(["FsCheck.NUnit", "xunit"]).check("FsCheck.Xunit") == []
    assert PopularIds(["FsCheck.NUnit"]).check("FsCheck.Nunlt")[0].rule_id == "NS5003"


def test_user_and_feed_ids_extend_the_list(tmp_path: Path) -> None:
    assert scan_id("Contoso.Billng") == []
    ids = tmp_path / "ids.txt"
    ids.write_text("# our own packages\nContoso.Billing\n\n", encoding="utf-8")
    found = scan_id("Contoso.Billng", ScanContext(popular_id_files=(str(ids),)))
    assert found == [("NS5003", Severity.WARNING)]
    found = scan_id("Contoso.Billng", ScanContext(popular_ids=("Contoso.Billing",)))
    assert found == [("NS5003", Severity.WARNING)]
    # and the feed's own id itself is not a look-alike
    assert scan_id("contoso.billing", ScanContext(popular_ids=("Contoso.Billing",))) == []


def test_popular_ids_file_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="popular-ids file"):
        analysers(ScanContext(popular_id_files=(str(tmp_path / "missing.txt"),)))
