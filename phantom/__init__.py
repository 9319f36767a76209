"""Phantom: run, resume and analyse the phantom-transitions fine-tuning study at scale.

The project is split by concept (see README): ``workers`` runs one trial, ``orchestrator``
runs many with Ray Tune, ``analysis`` reads what they wrote with DuckDB. This package holds
what all three share: errors, configuration, paths and the command line.
"""

__version__ = "0.1.0"
