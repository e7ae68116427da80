"""Browser tests: a headless Chromium against the live stack."""
