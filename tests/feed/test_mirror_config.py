"""``nuseal serve --upstream`` configuration (issue 16): bad upstreams are refused with a line naming the problem
before anything listens, and the upstreams reach every worker through the JSON configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from nuseal.cli.main import main
from nuseal.feed.config import FeedConfig, UpstreamConfig


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--upstream", "http://127.0.0.1:1/v3/index.json"], "is plain http"),
        (["--upstream", "ftp://example.test/v3/index.json"], "is not an http(s) service index URL"),
        (["--upstream", "a b=https://example.test/v3/index.json"], "use letters, digits"),
        (
            ["--upstream", "x=https://a.test/v3/index.json", "--upstream", "X=https://b.test/v3/index.json"],
            "same name",
        ),
    ],
)
def test_bad_upstreams_are_refused_with_a_clear_line(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--data", str(tmp_path / "feed"), "--port", "0", "--no-signing", "--http", *args])
    err = capsys.readouterr().err
    assert code != 0
    assert message in err and "Traceback" not in err and "internal error" not in err
    assert not (tmp_path / "feed" / "feed.db").exists()  # refused before the feed was opened


def test_upstreams_survive_the_workers_json_configuration(tmp_path: Path) -> None:
    up = UpstreamConfig("nuget.org", "https://api.nuget.org/v3/index.json", ("Newtonsoft.*", "System.*"))
    config = FeedConfig(data_dir=tmp_path, base_url="http://127.0.0.1:1", upstreams=(up,), upstream_metadata_ttl=60)
    again = FeedConfig.from_json(config.to_json())
    assert again.upstreams == (up,) and again.upstream_metadata_ttl == 60
    assert again == config
