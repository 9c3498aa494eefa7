"""nuseal.package."""
