"""Helpers shared by unit tests: in-memory stand-ins for real parts, and test data several test files use
(a test file is never imported by another)."""
