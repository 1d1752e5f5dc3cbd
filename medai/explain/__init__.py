"""Explanations a clinician can read: one module per method."""
