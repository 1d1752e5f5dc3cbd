"""Privacy and security of patient data: pseudonyms, date shifting, de-identification, encryption, DP, audits.

Everything here is shared by the ingestion code of every task (EHR tables, notes, DICOM) so that one key and one
method protect all of them. Submodules load their optional dependencies lazily.
"""
