"""nuseal: NuGet package supply-chain protection (sign, verify, serve, restore, scan)."""

__version__ = "0.1.0"
__all__ = ["__version__"]
