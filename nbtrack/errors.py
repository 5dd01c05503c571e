"""Exceptions nbtrack raises at its users."""


class NoActiveRunError(RuntimeError):
    """``nbtrack.log`` and friends were called outside a tracked cell."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"nbtrack.{what}() was called outside a tracked cell. Start one by putting "
            "`%%track` (after `%load_ext nbtrack` or `import nbtrack`) on the first line of the "
            "cell, e.g. `%%track --experiment my-exp`."
        )
