"""nuseal.verify."""
