"""nuseal.timestamp."""
