"""The catalogue of attention failures: one module per case in ``catalogue/cases``."""
