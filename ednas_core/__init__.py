"""EDNAS: decoupled structure and operation policy vectors for neural architecture search.

The library knows nothing of DVC or MLflow (except tracking.py); stages/ are thin CLIs around it.
"""

__version__ = "0.1.0"
