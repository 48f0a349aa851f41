"""Commands registered by this module (in progress)."""
