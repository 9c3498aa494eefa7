"""nuseal.client."""
