"""nuseal.feed."""
