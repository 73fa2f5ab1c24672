"""moto's request dispatch without the work it repeats on every request.

moto's `DomainDispatcherApplication` answers "which backend serves this host?" by listing
moto's package folder (an `isdir` per entry, ~200 of them) and then matching every backend's
URL pattern, for every request; and `BaseResponse.call_action` lists the response class's
methods with `inspect.getmembers` before each action. Both answers are fixed for the life of
the process (moto's modules and classes do not change), and together they were 2 % of the
test suite's CPU. Here each is computed once per host and once per class, with the same result.
"""

import functools
from typing import Any

from moto.core import responses
from moto.core.utils import method_names_from_class
from moto.moto_server.werkzeug_app import DomainDispatcherApplication


class Dispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering the backend it found for each host."""

    def __init__(self, create_app: Any) -> None:
        super().__init__(create_app)
        self._backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        # Threads of the WSGI server may both miss and both compute: the same answer.
        try:
            return self._backends[host]
        except KeyError:
            backend = self._backends[host] = super().get_backend_for_host(host)
            return backend


@functools.cache
def _method_names(clazz: object) -> frozenset[str]:
    # call_action only asks whether the action is among them.
    return frozenset(method_names_from_class(clazz))


def install() -> None:
    """Have moto's responses look up their action methods in a set built once per class."""
    responses.method_names_from_class = _method_names  # type: ignore[attr-defined, assignment]


def uninstall() -> None:
    responses.method_names_from_class = method_names_from_class  # type: ignore[attr-defined]
