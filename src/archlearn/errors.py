"""The one exception archlearn raises for bad input: its message names the problem."""


class ArchlearnError(ValueError):
    """Bad input to archlearn: a config, a shape, an unsupported layer, a corrupt file, a NaN loss.

    A ``ValueError`` subclass, so ``except ValueError`` in user code keeps working.

    >>> raise ArchlearnError("lambda1 must be >= 0, got -1")
    Traceback (most recent call last):
    archlearn.errors.ArchlearnError: lambda1 must be >= 0, got -1
    """
