"""Electronic health records: patients as ordered visits of diagnosis, procedure and medication codes.

``records`` holds the data model every EHR source produces and every EHR task consumes; sources (the MIMIC-III
schema, a synthetic cohort generator) and drug-code mapping live beside it.
"""
