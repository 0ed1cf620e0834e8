"""End-to-end tests with real Chromium; they run inside a loopback-only network namespace."""
