"""Thin command-line layer over nuseal's libraries: parsing options, formatting output, exit codes."""
