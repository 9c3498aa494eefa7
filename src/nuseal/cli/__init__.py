"""nuseal.cli."""
