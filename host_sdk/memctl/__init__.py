"""memctl host SDK."""
