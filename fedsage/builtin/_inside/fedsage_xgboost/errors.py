"""The three kinds of failure the SageMaker algorithm toolkit reports.

A message built from another exception ends with ``(caused by <ExceptionType>)``, as in
the image, because failure texts and their tests depend on that wording.
"""


class AlgorithmToolkitError(Exception):
    """A failure that ends the training job; ``message`` is what the failure file says."""

    def __init__(self, message=None, caused_by=None):
        if message:
            text = message
        elif caused_by is not None:
            text = str(caused_by)
        else:
            text = "unknown error occurred"
        if caused_by is not None:
            text += " (caused by %s)" % type(caused_by).__name__
        Exception.__init__(self, text)
        self.message = text
        self.caused_by = caused_by


class UserError(AlgorithmToolkitError):
    """Bad input the user can fix: hyperparameters, channels, data."""


class AlgorithmError(AlgorithmToolkitError):
    """A failure inside the algorithm (xgboost itself failed)."""


class PlatformError(AlgorithmToolkitError):
    """The environment is not what the algorithm needs."""
