"""Test helpers shipped with the package (as ``optuna.testing``): importable by tests and by
anyone checking a deployment. Nothing here is used by a normal run."""
