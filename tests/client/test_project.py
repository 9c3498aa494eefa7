"""Restore inputs without MSBuild (nuseal.client.project): properties from Directory.Build.props, conditions,
multi-targeting, Central Package Management, the SDK's implicit NETStandard.Library, packages.config, .sln, and a
clear error for what cannot be evaluated."""

from __future__ import annotations

from pathlib import Path

import pytest

from nuseal.client.project import find_inputs, load_packages_config, load_project
from nuseal.errors import UsageError


def _refs(project_path: Path, framework: str | None = None) -> dict[str, str]:
    project = load_project(project_path, environ={})
    target = next(t for t in project.targets if framework is None or t.framework == framework)
    return {r.id: r.range.normalized for r in target.references}


def test_properties_from_directory_build_props_and_conditions(tmp_path: Path) -> None:
    (tmp_path / "Directory.Build.props").write_text(
        "<Project><PropertyGroup><JsonVersion>12.0.3</JsonVersion><Tfms>netcoreapp3.1;netstandard2.0</Tfms>"
        "</PropertyGroup></Project>"
    )
    app = tmp_path / "src" / "App"
    app.mkdir(parents=True)
    (app / "App.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk">\n'
        "  <PropertyGroup><TargetFrameworks>$(Tfms)</TargetFrameworks></PropertyGroup>\n"
        '  <ItemGroup><PackageReference Include="Newtonsoft.Json" Version="$(JsonVersion)" /></ItemGroup>\n'
        "  <ItemGroup Condition=\" '$(TargetFramework)' == 'netstandard2.0' \">\n"
        '    <PackageReference Include="System.Memory"><Version>[4.5.3, 5.0)</Version></PackageReference>\n'
        "  </ItemGroup>\n"
        "  <ItemGroup Condition=\"'$(Configuration)' == 'Debug' and '$(TargetFramework)' != ''\">\n"
        '    <PackageReference Include="Only.In.Debug" Version="1.0" />\n'
        "  </ItemGroup>\n"
        "</Project>\n"
    )
    project = load_project(app / "App.csproj", environ={})
    assert [t.framework for t in project.targets] == ["netcoreapp3.1", "netstandard2.0"]
    assert _refs(app / "App.csproj", "netcoreapp3.1") == {"Newtonsoft.Json": "[12.0.3, )"}
    # netstandard2.0 also gets the SDK's implicit NETStandard.Library 2.0.3
    assert _refs(app / "App.csproj", "netstandard2.0") == {
        "Newtonsoft.Json": "[12.0.3, )",
        "System.Memory": "[4.5.3, 5.0.0)",
        "NETStandard.Library": "[2.0.3, )",
    }


def test_update_and_remove_items(tmp_path: Path) -> None:
    (tmp_path / "a.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>net6.0</TargetFramework></PropertyGroup>'
        '<ItemGroup><PackageReference Include="A;B" Version="1.0" /><PackageReference Update="B" Version="2.0" />'
        '<PackageReference Include="C" Version="1.0" /><PackageReference Remove="C" /></ItemGroup></Project>'
    )
    assert _refs(tmp_path / "a.csproj") == {"A": "[1.0.0, )", "B": "[2.0.0, )"}


def test_central_package_management(tmp_path: Path) -> None:
    (tmp_path / "Directory.Packages.props").write_text(
        "<Project><PropertyGroup><ManagePackageVersionsCentrally>true</ManagePackageVersionsCentrally>"
        '</PropertyGroup><ItemGroup><PackageVersion Include="A" Version="1.2.3" />'
        '<PackageVersion Include="B" Version="[2.0]" /><GlobalPackageReference Include="Analyzer" Version="3.0" />'
        "</ItemGroup></Project>"
    )
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>netcoreapp3.1</TargetFramework>'
        '</PropertyGroup><ItemGroup><PackageReference Include="A" /><PackageReference Include="B" '
        'VersionOverride="2.1" /></ItemGroup></Project>'
    )
    project = load_project(app / "app.csproj", environ={})
    assert project.central
    assert _refs(app / "app.csproj") == {"A": "[1.2.3, )", "B": "[2.1.0, )", "Analyzer": "[3.0.0, )"}
    (app / "app.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>netcoreapp3.1</TargetFramework>'
        '</PropertyGroup><ItemGroup><PackageReference Include="A" Version="1.0" /></ItemGroup></Project>'
    )
    with pytest.raises(UsageError, match="NU1008"):
        load_project(app / "app.csproj", environ={})
    (app / "app.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>netcoreapp3.1</TargetFramework>'
        '</PropertyGroup><ItemGroup><PackageReference Include="Unknown" /></ItemGroup></Project>'
    )
    with pytest.raises(UsageError, match="NU1010"):
        load_project(app / "app.csproj", environ={})


def test_lock_file_properties(tmp_path: Path) -> None:
    (tmp_path / "a.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>netcoreapp3.1</TargetFramework>'
        "<RestorePackagesWithLockFile>true</RestorePackagesWithLockFile><RestoreLockedMode>true</RestoreLockedMode>"
        "<NuGetLockFilePath>locks/my.lock.json</NuGetLockFilePath></PropertyGroup></Project>"
    )
    project = load_project(tmp_path / "a.csproj", environ={})
    assert project.use_lock_file and project.locked_mode
    assert project.lock_file_path == tmp_path / "locks" / "my.lock.json"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            "<PropertyGroup><V>$([System.DateTime]::Now.Year)</V></PropertyGroup>"
            '<ItemGroup><PackageReference Include="A" Version="$(V)" /></ItemGroup>',
            "$([System.DateTime]",
        ),
        (
            '<ItemGroup Condition="Exists(\'x\')"><PackageReference Include="A" Version="1.0" /></ItemGroup>',
            "Exists('x')",
        ),
        ('<ItemGroup><PackageReference Include="A" Version="not-a-version" /></ItemGroup>', "NU1105"),
        ('<ItemGroup><PackageReference Include="A" /></ItemGroup>', "NU1015"),
    ],
)
def test_what_cannot_be_evaluated_is_named(tmp_path: Path, body: str, needle: str) -> None:
    (tmp_path / "a.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>net6.0</TargetFramework></PropertyGroup>'
        f"{body}</Project>"
    )
    with pytest.raises(UsageError) as info:
        load_project(tmp_path / "a.csproj", environ={})
    assert needle in str(info.value)
    assert "a.csproj" in str(info.value) or needle.startswith("NU")


def test_an_unevaluable_property_that_restore_does_not_use_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "a.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>net6.0</TargetFramework>'
        "<Year>$([System.DateTime]::Now.Year)</Year></PropertyGroup>"
        '<ItemGroup><PackageReference Include="A" Version="1.0" /></ItemGroup></Project>'
    )
    assert _refs(tmp_path / "a.csproj") == {"A": "[1.0.0, )"}


def test_no_target_framework_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "old.csproj").write_text('<Project ToolsVersion="15.0"><ItemGroup /></Project>')
    with pytest.raises(UsageError, match="no TargetFramework"):
        load_project(tmp_path / "old.csproj", environ={})


def test_packages_config_and_solution_and_folder(tmp_path: Path) -> None:
    (tmp_path / "packages.config").write_text(
        '<?xml version="1.0"?><packages><package id="A" version="1.0.0" targetFramework="net472" />'
        '<package id="B" version="2.0.0-beta" /></packages>'
    )
    assert [(i, str(v)) for i, v in load_packages_config(tmp_path / "packages.config")] == [
        ("A", "1.0.0"),
        ("B", "2.0.0-beta"),
    ]
    assert find_inputs(tmp_path).packages_config == (tmp_path / "packages.config").resolve()
    for name in ("One", "Two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.csproj").write_text(
            '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>net6.0</TargetFramework>'
            f'</PropertyGroup><ItemGroup><PackageReference Include="{name}.Dep" Version="1.0" /></ItemGroup></Project>'
        )
    cs, folder = "{9A19103F-16F7-4668-BE54-9A1E7A4F7556}", "{2150E333-8FDC-42A3-9474-1A3956D46DE8}"
    (tmp_path / "All.sln").write_text(
        "Microsoft Visual Studio Solution File, Format Version 12.00\n"
        f'Project("{cs}") = "One", "One\\One.csproj", "{{11111111-1111-1111-1111-111111111111}}"\nEndProject\n'
        f'Project("{folder}") = "Folder", "Folder", "{{22222222-2222-2222-2222-222222222222}}"\nEndProject\n'
        f'Project("{cs}") = "Two", "Two\\Two.csproj", "{{33333333-3333-3333-3333-333333333333}}"\nEndProject\n'
    )
    found = find_inputs(tmp_path)
    assert [p.name for p in found.projects] == ["One", "Two"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="holds no project"):
        find_inputs(tmp_path / "empty")


def test_project_references_and_private_assets(tmp_path: Path) -> None:
    lib = tmp_path / "Lib"
    lib.mkdir()
    (lib / "Lib.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>netstandard2.0</TargetFramework>'
        '</PropertyGroup><ItemGroup><PackageReference Include="Flows" Version="1.0" />'
        '<PackageReference Include="Private" Version="1.0" PrivateAssets="All" /></ItemGroup></Project>'
    )
    app = tmp_path / "App"
    app.mkdir()
    (app / "App.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>net6.0</TargetFramework></PropertyGroup>'
        '<ItemGroup><ProjectReference Include="..\\Lib\\Lib.csproj" /></ItemGroup></Project>'
    )
    [target] = load_project(app / "App.csproj", environ={}).targets
    assert target.projects == ((lib / "Lib.csproj").resolve(),)
    lib_refs = {r.id: r.flows for r in load_project(lib / "Lib.csproj", environ={}).targets[0].references}
    assert lib_refs == {"Flows": True, "Private": False, "NETStandard.Library": True}
    (app / "App.csproj").write_text(
        '<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup><TargetFramework>net6.0</TargetFramework></PropertyGroup>'
        '<ItemGroup><ProjectReference Include="..\\Missing\\Missing.csproj" /></ItemGroup></Project>'
    )
    with pytest.raises(UsageError, match="does not exist"):
        load_project(app / "App.csproj", environ={})


@pytest.mark.parametrize(
    ("props", "needle"),
    [
        (
            "<TargetFramework>net6.0</TargetFramework><RuntimeIdentifier>linux-x64</RuntimeIdentifier>",
            "RuntimeIdentifier",
        ),
        ("<TargetFramework>netcoreapp2.1</TargetFramework>", "Microsoft.NETCore.App"),
    ],
)
def test_unsupported_restore_shapes_are_named(tmp_path: Path, props: str, needle: str) -> None:
    (tmp_path / "a.csproj").write_text(
        f'<Project Sdk="Microsoft.NET.Sdk"><PropertyGroup>{props}</PropertyGroup></Project>'
    )
    with pytest.raises(UsageError, match=needle):
        load_project(tmp_path / "a.csproj", environ={})
