"""nuseal.scan."""
