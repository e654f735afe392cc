"""privvid's command line (installed as ``privvid.cli``): thin Typer apps over the library."""
