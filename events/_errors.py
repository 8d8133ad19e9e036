"""The vocabulary's one error type."""


class EventValueError(ValueError):
    """An event field has a value the vocabulary refuses.

    The message starts with the field's name (``amount: ...``) so that a loader can prefix the
    file, line and event index.
    """
