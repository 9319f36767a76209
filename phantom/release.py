"""The release number of Phantom, in a leaf module that imports nothing.

``phantom/__init__`` re-exports it as ``phantom.__version__``; code inside the project imports
it from here, so that reading the number never runs ``phantom/__init__`` (which imports the
API, which reaches the orchestrator and the worker, which record this number: a cycle).
Keep it equal to ``version`` in pyproject.toml.
"""

__version__ = "0.1.0"
