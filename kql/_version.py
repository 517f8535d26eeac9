"""The package version, in one place (the User-Agent and kql --version read it)."""

__version__ = "0.1.0"
