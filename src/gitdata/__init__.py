"""git data: research data in external storage, small pointer files in git."""

__version__ = "0.1.0"
