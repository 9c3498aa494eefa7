"""nuseal._internal."""
