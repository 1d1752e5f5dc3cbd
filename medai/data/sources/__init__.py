"""Readers that turn files on disk into :class:`medai.data.Dataset` objects.

- :mod:`medai.data.sources.medmnist`: MedMNIST ``.npz`` archives (local, or downloaded and checksum-verified).
- :mod:`medai.data.sources.images`: folders of PNG/JPEG/BMP/TIFF/DICOM images labelled by sub-folder or CSV.
- :mod:`medai.data.sources.dicom`: DICOM pixel decoding (rescale, windowing) and patient pseudonyms.
- :mod:`medai.data.sources.tabular`: CSV/TSV/Parquet/ARFF tables of clinical measurements.
- :mod:`medai.data.sources.timeseries`: :class:`~medai.data.sources.timeseries.RawSeries`, the hourly-binned
  clinical time series both ICU loaders return, with the plausible-range table and the parse cache.
- :mod:`medai.data.sources.physionet2012`: PhysioNet/CinC 2012 ``Time,Parameter,Value`` ICU records.
- :mod:`medai.data.sources.mimic3`: MIMIC-III ICU stays (CHARTEVENTS, LABEVENTS, OUTPUTEVENTS streamed).
- :mod:`medai.data.sources.ecg`: UCR-format ECG series and annotated WFDB records cut into beats.

Each module imports its heavy dependencies lazily, so importing this package is cheap.
"""
