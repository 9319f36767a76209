"""The analysis commands: ``phantom query`` and ``phantom analyze`` (:mod:`~analysis.commands.cli`
registers them), the read-only statement check and output formats of ``phantom query``
(:mod:`~analysis.commands.query`), the writing of ``phantom analyze``
(:mod:`~analysis.commands.analyze`) and the arithmetic of ``phantom predict``
(:mod:`~analysis.commands.predict`; the command itself runs a model, so workers/cli.py has it)."""
