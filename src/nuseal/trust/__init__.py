"""nuseal.trust."""
