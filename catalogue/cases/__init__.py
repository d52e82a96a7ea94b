"""Catalogue cases, one module each; see :mod:`catalogue` for the contract."""
