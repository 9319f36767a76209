"""What the analysis commands do (the command line is a shell over these, through the face
:mod:`phantom.analysis`): the read-only statement check, the run and the output formats of
``phantom query`` (:mod:`~phantom.analysis.commands.query`), the writing of ``phantom analyze``
(:mod:`~phantom.analysis.commands.analyze`) and the blind prediction of ``phantom predict``
(:mod:`~phantom.analysis.commands.predict`; a model the reference has not measured is measured
by the workers' probe, handed in)."""
