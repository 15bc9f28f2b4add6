"""Command-line tools that prepare model files for the benchmark (``python -m benchmark.tools.<tool>``)."""
