"""Readers that turn files on disk into :class:`medai.data.Dataset` objects.

- :mod:`medai.data.sources.medmnist`: MedMNIST ``.npz`` archives (local, or downloaded and checksum-verified).
- :mod:`medai.data.sources.images`: folders of PNG/JPEG/BMP/TIFF/DICOM images labelled by sub-folder or CSV.
- :mod:`medai.data.sources.dicom`: DICOM pixel decoding (rescale, windowing) and patient pseudonyms.

Each module imports its heavy dependencies lazily, so importing this package is cheap.
"""
