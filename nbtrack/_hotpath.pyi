from collections.abc import Callable
from typing import Any

def make_log(python_version: Callable[..., None], /) -> Callable[..., None]: ...
def activate(
    calls: list[Any],
    known_keys: set[str],
    tensor_keys: set[str],
    max_buffered: int,
    drain_now: Callable[[], object],
    /,
) -> None: ...
def deactivate() -> None: ...
def set_tensor_type(kind: type, /) -> None: ...
