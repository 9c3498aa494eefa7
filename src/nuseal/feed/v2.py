"""Placeholder for the read-only V2 listing; filled in below."""

from __future__ import annotations

from starlette.routing import Route

from nuseal.feed.service import FeedService

__all__ = ["LegacyFeed"]


class LegacyFeed:
    def __init__(self, service: FeedService) -> None:
        self.service = service

    def routes(self) -> list[Route]:
        return []
