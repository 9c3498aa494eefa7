"""nuseal.devpki."""
