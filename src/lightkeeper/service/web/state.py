"""What the reviewer UI keeps per process, and where its handlers find the service's parts.

`WebState` lives on the reviewer UI's application's ``state.web`` (made by
`lightkeeper.service.web.install`): the review settings (read from the environment on first
use, like every worker's), the sign-in limiter and the clear images waiting for their one
fetch. The store and the vault are the service's own, on the service application's
`lightkeeper.service.runtime.Runtime` (made when it starts); the vault exists only with
actions on (``LIGHTKEEPER_ACTIONS=1``, the default), since nothing is quarantined otherwise.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request

from lightkeeper.actions.vault import Vault
from lightkeeper.banks.store import BankStore
from lightkeeper.review.settings import ReviewSettings
from lightkeeper.service.web.signins import SignInLimiter
from lightkeeper.service.web.tickets import ClearImages

if TYPE_CHECKING:
    from lightkeeper.service.runtime import Runtime
    from lightkeeper.service.web.reporting import Reporting

__all__ = ["WebState", "store_of", "vault_of", "web_state"]


class WebState:
    """The reviewer UI's per-process state; see the module docstring."""

    def __init__(self, service: FastAPI) -> None:
        #: The service's application, whose runtime holds the store and the vault.
        self.service = service
        self._lock = threading.Lock()
        self._review: ReviewSettings | None = None
        self._reporting: Reporting | None = None
        self.sign_ins = SignInLimiter()
        self.clear_images = ClearImages()

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.service.state.runtime
        return runtime

    def review_settings(self) -> ReviewSettings:
        with self._lock:
            if self._review is None:
                self._review = ReviewSettings.from_env()
            return self._review

    def reporting(self) -> Reporting:
        from lightkeeper.service.web.reporting import Reporting

        with self._lock:
            if self._reporting is None:
                self._reporting = Reporting.from_env()
            return self._reporting

    def configure(
        self, *, review: ReviewSettings | None = None, reporting: Reporting | None = None
    ) -> None:
        """Use these settings instead of the environment's (tests, embedding)."""
        with self._lock:
            if review is not None:
                self._review = review
            if reporting is not None:
                self._reporting = reporting


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def store_of(request: Request) -> BankStore:
    return web_state(request).runtime.store


def vault_of(request: Request) -> Vault | None:
    """The service's vault; None when actions are off (nothing is quarantined then)."""
    actioner = web_state(request).runtime.actioner
    return None if actioner is None else actioner.vault
