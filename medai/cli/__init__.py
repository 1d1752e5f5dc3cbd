"""The ``medai`` command line: a thin layer over medai.api."""
