"""nuseal.signature."""
