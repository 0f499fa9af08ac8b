"""Sen12Landslides utilities."""

__version__ = "0.1.0"
