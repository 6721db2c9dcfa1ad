"""Test helpers (not tests)."""
