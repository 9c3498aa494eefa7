"""The response headers of each class of the feed's answers (``nuseal.feed.http.headers``), as
``test_security_headers`` and ``test_mirror`` check them:

* :func:`check_download`: a user's file: ``Content-Disposition: attachment`` with the file's name, the sandboxing
  CSP, ``nosniff``;
* :func:`check_page`: an HTML page: a CSP with no inline script or style, ``frame-ancestors 'none'``,
  ``base-uri 'none'``, ``form-action 'self'``; ``X-Frame-Options: DENY``, ``Referrer-Policy``, ``nosniff``;
* :func:`check_sandboxed`: anything else (JSON, XML, text, redirects, errors): the sandboxing CSP, ``nosniff``,
  ``X-Frame-Options``.

:func:`check_headers` picks the class of a response and checks it.
"""

from __future__ import annotations

import httpx


def _csp(response: httpx.Response) -> dict[str, list[str]]:
    values = response.headers.get_list("content-security-policy")
    assert len(values) == 1, (response.url, values)
    directives: dict[str, list[str]] = {}
    for part in values[0].split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def _check_common(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.url} -> {response.status_code}"
    assert response.headers.get_list("x-content-type-options") == ["nosniff"], where
    assert response.headers.get_list("x-frame-options") == ["DENY"], where
    assert response.headers.get("referrer-policy") in ("same-origin", "no-referrer", "strict-origin"), where


def check_page(response: httpx.Response) -> None:
    _check_common(response)
    csp = _csp(response)
    where = f"{response.request.method} {response.url}"
    assert csp.get("default-src") in (["'none'"], ["'self'"]), (where, csp)
    assert csp.get("frame-ancestors") == ["'none'"], (where, csp)
    assert csp.get("base-uri") == ["'none'"], (where, csp)
    assert csp.get("form-action") == ["'self'"], (where, csp)
    for directive, sources in csp.items():  # no inline script or style, no eval, nothing from elsewhere
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"} & set(sources), (
            where,
            directive,
        )
    assert "content-disposition" not in response.headers, where


def check_sandboxed(response: httpx.Response) -> None:
    _check_common(response)
    csp = _csp(response)
    where = f"{response.request.method} {response.url} -> {response.status_code}"
    assert csp.get("default-src") == ["'none'"], (where, csp)
    assert csp.get("frame-ancestors") == ["'none'"], (where, csp)
    assert csp.get("sandbox") == [], (where, csp)  # no allow-scripts or any other exception


def check_download(response: httpx.Response, name: str) -> None:
    check_sandboxed(response)
    assert response.headers.get("content-disposition") == f'attachment; filename="{name}"', response.url


def check_headers(response: httpx.Response, *, user_file: bool) -> str:
    """Check ``response`` against the headers of its class; returns the class."""
    if user_file and response.status_code < 400:
        check_download(response, response.url.path.rsplit("/", 1)[-1])
        return "download"
    if response.headers.get("content-type", "").startswith("text/html"):
        check_page(response)
        return "page"
    check_sandboxed(response)
    assert "content-disposition" not in response.headers, response.url
    return "document"
