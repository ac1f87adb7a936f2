"""Suite-wide settings: property tests are derandomized so every run of the
suite tests the same examples (seeded, deterministic CI)."""

from hypothesis import settings

settings.register_profile("memctl", derandomize=True, database=None)
settings.load_profile("memctl")
