"""Validation of the harness against known effects (``logbench validate``).

:mod:`harness.validation.decide` holds the pure decision logic,
:mod:`harness.validation.phases` the measured checks; :mod:`harness.validate`
is the command. See ``docs/methodology.md``.
"""
