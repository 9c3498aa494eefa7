"""The NuGet protocol documents the feed serves: service index, flat container and registration
(:mod:`.documents`), search and autocomplete, the read-only V2 listing, RepositorySignatures, download counts."""
