"""Test doubles shared by unit tests (in-memory stand-ins for real parts)."""
