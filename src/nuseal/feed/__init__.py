"""The NuGet V3 feed behind ``nuseal serve``, in sub-packages (inner layers first; a layer imports only the ones
before it):

* :mod:`nuseal.feed.config`, :mod:`nuseal.feed.errors`: settings and the error hierarchy (each with an HTTP status);
* :mod:`nuseal.feed.store`: database models, engine and migrations, file storage, audit log, test fault points;
* :mod:`nuseal.feed.accounts`: users and API keys, two-factor authentication, signing certificates;
* :mod:`nuseal.feed.publish`: upload, the push pipeline and its stages, the publisher (:class:`FeedService`);
* :mod:`nuseal.feed.signing`: repository signing, signature checks as push stages, backfill, revalidation;
* :mod:`nuseal.feed.protocol`: the NuGet documents (service index, flat container, registration), search, V2,
  RepositorySignatures, downloads;
* :mod:`nuseal.feed.http`: the ASGI application, routes, pages, security headers, the uvicorn protocol, TLS.

This package imports none of them: ``import nuseal.feed.accounts`` does not load Starlette. See ``docs/feed.md``.
"""
