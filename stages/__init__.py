"""Thin command-line stages of the DVC pipeline; each reads params.yaml through ednas_core.config."""
