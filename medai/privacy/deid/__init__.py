"""De-identification of free-text notes, structured records and DICOM (HIPAA Safe Harbor identifiers).

Submodules: ``text`` (clinical notes: find and replace the 18 Safe Harbor identifiers), ``synthetic_notes``
(seeded evaluation notes with gold spans), ``score`` (token- and span-level recall and precision; MEDDOCAN and
PhysioNet deid readers), ``table`` (structured records) and ``dicom`` (the DICOM basic confidentiality profile).
"""
