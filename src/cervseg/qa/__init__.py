"""Per-slice QA scores of automatic contours (model signals + anatomy checks)."""
