"""nbtrack's own warning category, so users (and our tests) can filter it precisely."""


class NbtrackWarning(UserWarning):
    """Something nbtrack could not do as asked; the run goes on."""
