"""Data files shipped with medai (e.g. ``mimic3_items.csv``, the MIMIC-III item-to-variable map)."""
