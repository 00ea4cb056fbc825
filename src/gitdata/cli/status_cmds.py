"""Commands registered by this module (filled in by its feature)."""
