"""Test material shared across the test folders: small real images, and weights files in the layouts the
plugins load (random weights, built here). Importable from every test module as ``helpers.<module>``: the
``tests`` folder is on ``sys.path`` (its conftest.py is imported from there), as ``conftest`` itself is.

A helper lives here, not in a test module, when tests of several folders use it: a test module imported by
another test module's name (``from test_attacks import batch``) breaks when either file moves."""
