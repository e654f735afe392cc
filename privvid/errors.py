"""Exceptions shared across privvid. Every message is meant to be shown to a user as is."""


class PrivvidError(Exception):
    """Base class: an error privvid explains itself."""


class BadInput(PrivvidError):
    """An input clip cannot be read or is not a video privvid accepts."""


class MissingWeights(PrivvidError):
    """A backend needs a weights / model file that is not where the user said, or is there but cannot be
    used (``problem``: the wrong kind of file, unreadable, altered)."""

    def __init__(self, what: str, path: object, hint: str, problem: str | None = None) -> None:
        # ``problem``: the file is there but cannot be used ("is not an .npz file"); None: it is missing;
        # ``path`` None: no file was named (the hint says which flag names it)
        text = (f"no {what} given" if path is None else f"{what} not found at {path}" if problem is None
                else f"{what} at {path} {problem}")
        super().__init__(f"{text}. {hint}")
        self.path = path


class BackendFailure(PrivvidError):
    """A processor raised or returned an invalid result; the clip must be quarantined."""


class ConfigError(PrivvidError, ValueError):
    """A setting is invalid: reported before any clip is processed (CLI exit code 2)."""
