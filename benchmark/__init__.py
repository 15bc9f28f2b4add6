"""IQA robustness benchmark: attacks x defenses x IQA metrics x datasets, measured honestly.

Run ``python -m benchmark --help``. Plugin families live in the subpackages ``attacks``, ``defenses``,
``metrics``, ``datasets``; reports in ``reports``.
"""
__version__ = "0.1.0"
