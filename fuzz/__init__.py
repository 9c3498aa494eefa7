"""Coverage-guided fuzz targets (atheris + libFuzzer) for nuseal's parsers of untrusted bytes.

One module per target (``fuzz/<target>.py``); ``fuzz/run.py`` builds the seed corpora from the real
vectors (``../shared/vectors``, see ``fuzz/seeds.py``) and runs the targets under libFuzzer with a time
bound per input (``-timeout``) and a memory bound (``-rss_limit_mb``). A finding is any exception other
than nuseal's own error types (:class:`nuseal.errors.NusealError` and its subclasses), a broken
invariant the target asserts, an input running past the time bound, or memory past the bound.

Run from the repository root: ``.venv/bin/python -m fuzz.run --seconds 60`` (``make fuzz``).
"""
