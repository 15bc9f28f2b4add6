"""IQA robustness benchmark: attacks x defenses x IQA metrics x datasets, measured honestly.

Run ``python -m benchmark --help``. Plugin families live in the subpackages ``attacks``, ``defenses``,
``metrics``, ``datasets``; trainers (default model, denoisers, training sets) in ``training``; reports in
``reports``. Imports go downward: shared helpers (``seeds``, ``weights``, ``images``, ``photos``, ``quality``,
``schema``, ``store``, ``config``) ← plugins ← ``training`` ← ``runner`` ← ``records``/``measures`` ← ``reports``
(``tests/test_layout.py`` checks it).
"""
__version__ = "0.1.0"
