"""The wire under the plugin protocol: one HTTP client per plugin, one exchange at a time.

A plugin on a unix socket (nearly all of them) is reached through ``unix_http``, HTTP/1.1
(h11) on asyncio streams, about a third of httpx's async cost per request; one on TCP, with
or without TLS, through httpx.

Kept apart from the protocol so that what Docker does on the wire (its dialer's timeouts,
its TLS rules, its ``callWithRetry`` backoff) reads in one place, and the protocol above
sees only answers or ``DriverError``s naming the plugin. ``Backoff`` is the one retry
policy of the drivers: discovery and requests both retry through it.

Two rules Docker does not have: an answer is read up to ``max_body`` bytes and no
further (a plugin streaming an endless body must not grow the agent), and a request that
may have reached the plugin is sent again only if the caller says it is safe to
(``may_resend``): a second ``Mount`` or ``Unmount`` is not harmless.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, TypeVar

import httpx

from isolator.common.errors import DriverError, strerror
from isolator.drivers.deadline import Deadline
from isolator.drivers.discovery import PluginAddress
from isolator.drivers.unix_http import BodyTooLargeError, UnixHTTPPool

__all__ = [
    "ACCEPT",
    "MAX_BODY",
    "MAYBE_SENT",
    "NOT_SENT",
    "Answer",
    "Backoff",
    "ClientClosedError",
    "PluginConnection",
    "PluginUnreachableError",
]

ACCEPT: Final = "application/vnd.docker.plugins.v1.2+json"
"""What dockerd (1.11 to today) sends as ``Accept`` on every plugin call."""

UNIX_HOST: Final = "plugin.moby.localhost"
"""The ``Host`` header current dockerd sends to plugins on unix sockets."""

DIAL_TIMEOUT: Final = 10.0
"""Connect timeout, as Docker's dialer (only a TCP connect can take this long)."""
MAX_IDLE_CONNECTIONS: Final = 6
IDLE_TIMEOUT: Final = 30.0

RETRY_BASE_DELAY: Final = 1.0
"""Docker's first retry delay."""
RETRY_BUDGET: Final = 30.0
"""Docker's retry window: with the doubling delays it gives up after about 15 s."""
MAX_BACKOFF: Final = 30.0
"""Docker's cap on one retry delay."""

_USER_AGENT: Final = "mesos-docker-volume-isolator"

MAX_BODY: Final = 1 << 20
"""Bytes of one answer the client reads (1 MiB): answers are a few hundred bytes."""

NOT_SENT: Final = (
    httpx.ConnectError,  # refused, no such socket, TLS handshake: before the request
    httpx.ConnectTimeout,
)
"""Failures before any byte of the request left: any call may be sent again."""

MAYBE_SENT: Final = (
    httpx.WriteError,  # part of the request may have been written
    httpx.ReadError,  # reset while the plugin had the request
    httpx.RemoteProtocolError,  # closed before (or in) the answer
)
"""Failures once the request may have reached the plugin: re-sent only if safe to."""

_log = logging.getLogger(__name__)

T = TypeVar("T")


class ClientClosedError(DriverError):
    """A call on (or in flight at) a closed plugin client."""

    def __init__(self) -> None:
        super().__init__("The Docker volume plugin client is closed")


class PluginUnreachableError(DriverError):
    """No attempt reached the plugin (every one failed to connect): the request was never
    sent, so the plugin did nothing for it."""


@dataclass(frozen=True)
class Answer:
    """A plugin's whole answer, read within the size limit."""

    status: int
    reason: str
    body: bytes


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Backoff:
    """Docker's retry policy: waits of ``base_delay * 2**n`` seconds, each capped at ``cap``,
    for as long as the next attempt would start within ``budget`` seconds of the first.

    A budget of 0 means one attempt. ``clock`` and ``sleep`` are how time is read and
    passed; tests replace them to count attempts without waiting.
    """

    base_delay: float = RETRY_BASE_DELAY
    budget: float = RETRY_BUDGET
    cap: float = MAX_BACKOFF
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    sleep: Callable[[float], Awaitable[None]] = field(default=_sleep, repr=False, compare=False)

    def __post_init__(self) -> None:
        if min(self.base_delay, self.budget, self.cap) < 0:
            raise ValueError("a retry budget, base delay or cap must not be negative")

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (0 for the first)."""
        return float(min(self.base_delay * 2**attempt, self.cap))

    async def retry(
        self,
        attempt: Callable[[], Awaitable[T]],
        retryable: tuple[type[Exception], ...],
        *,
        on_retry: Callable[[Exception, float], None],
        give_up: Callable[[Exception, int, float], Exception],
        deadline: Deadline | None = None,
    ) -> T:
        """``attempt()`` until it returns, raises a non-``retryable`` error, or the budget ends.

        ``on_retry(error, delay)`` is told of each retry; at the end of the budget, or when
        the next attempt would start at or after ``deadline``, ``give_up(error, attempts,
        elapsed)`` gives the error to raise.
        """
        start, tries = self.clock(), 0
        while True:
            try:
                return await attempt()
            except retryable as error:
                delay = self.delay(tries)
                elapsed = self.clock() - start
                late = deadline is not None and delay >= deadline.remaining()
                if late or elapsed + delay >= self.budget:
                    raise give_up(error, tries + 1, elapsed) from None
                on_retry(error, delay)
            await self.sleep(delay)
            tries += 1


class PluginConnection:
    """The HTTP client of one discovered plugin, and the one way to post to it.

    Use it from one event loop. Once closed, every post fails with ``ClientClosedError``,
    including those waiting for an answer or for their next retry. Building one may read
    TLS files: do it off the loop.
    """

    def __init__(self, address: PluginAddress, *, max_body: int = MAX_BODY) -> None:
        if max_body < 0:
            raise ValueError("max_body must not be negative")
        self.address = address
        self.max_body = max_body
        self._unix: UnixHTTPPool | None = None
        self._http: httpx.AsyncClient | None = None
        if address.socket_path is not None:
            self._unix = UnixHTTPPool(
                address.socket_path,
                headers={"Host": UNIX_HOST, "Accept": ACCEPT, "User-Agent": _USER_AGENT},
                max_idle=MAX_IDLE_CONNECTIONS,
                idle_timeout=IDLE_TIMEOUT,
                dial_timeout=DIAL_TIMEOUT,
            )
        else:
            self._http = _http_client(address)
        self._closed = False

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def where(self) -> str:
        """The address for messages, with the spec file it came from when there is one."""
        where = self.address.url
        if self.address.source != self.address.socket_path:
            where += f" (from {self.address.source})"
        return where

    async def post(
        self,
        method: str,
        content: bytes,
        *,
        timeout: float,
        backoff: Backoff,
        may_resend: bool,
        deadline: Deadline | None = None,
    ) -> Answer:
        """POST ``content`` to ``/<method>``; the answer, read up to ``max_body`` bytes.

        Failures to connect are retried as ``backoff`` says, and so are the other
        transport failures if ``may_resend``; a timed-out exchange never is, since the
        plugin may still be doing the work. ``timeout`` bounds each exchange; when
        ``deadline`` comes first, the exchange ends there with ``TimeoutError``, for the
        deadline's owner to word. Giving up after failing to connect every time raises
        ``PluginUnreachableError``.
        """
        retryable = NOT_SENT + MAYBE_SENT if may_resend else NOT_SENT

        async def once() -> Answer:
            self._check_open()
            limit = timeout if deadline is None else min(timeout, deadline.remaining())
            try:
                async with asyncio.timeout(limit):
                    return await self._exchange(method, content)
            except TimeoutError:
                if limit < timeout:
                    raise  # the caller's deadline, not this exchange's timeout
                raise DriverError(
                    f"Docker volume plugin {self.name!r} at {self.where} did not answer "
                    f"{method} within {timeout:g} s"
                ) from None
            except retryable:
                self._check_open()
                raise
            except MAYBE_SENT as error:
                self._check_open()
                raise DriverError(
                    f"Docker volume plugin {self.name!r} at {self.where}: the connection "
                    f"failed after {method} was sent ({strerror(error)}); not sent again, "
                    "since the plugin may have acted on it"
                ) from None
            except (httpx.HTTPError, RuntimeError) as error:
                self._check_open()  # httpx raises RuntimeError on a client closed meanwhile
                raise DriverError(
                    f"Docker volume plugin {self.name!r} at {self.where}: {method} failed: {error}"
                ) from None

        def on_retry(error: Exception, delay: float) -> None:
            _log.warning(
                "Docker volume plugin %r at %s: %s failed: %s; retrying in %g s",
                self.name,
                self.where,
                method,
                strerror(error),
                delay,
            )

        def give_up(error: Exception, attempts: int, elapsed: float) -> Exception:
            kind = PluginUnreachableError if isinstance(error, NOT_SENT) else DriverError
            return kind(
                f"Docker volume plugin {self.name!r} at {self.where} is not answering "
                f"{method}: {strerror(error)} (gave up after {attempts} attempt(s) in "
                f"{elapsed:.1f} s)"
            )

        return await backoff.retry(
            once, retryable, on_retry=on_retry, give_up=give_up, deadline=deadline
        )

    async def aclose(self) -> None:
        """Close the connections; posts in flight end with ``ClientClosedError``."""
        self._closed = True
        if self._unix is not None:
            await self._unix.aclose()
        if self._http is not None:
            await self._http.aclose()

    async def _exchange(self, method: str, content: bytes) -> Answer:
        """One request; the body is streamed and read no further than ``max_body``."""
        if self._unix is not None:
            try:
                status, reason, whole = await self._unix.post(
                    "/" + method, content, max_body=self.max_body
                )
            except BodyTooLargeError:
                raise self._too_large(method) from None
            return Answer(status, reason, whole)
        assert self._http is not None
        async with self._http.stream("POST", "/" + method, content=content) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self.max_body:
                raise self._too_large(method)
            body = bytearray()
            # Raw: a body is never decompressed, so a small one cannot grow past the cap.
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self.max_body:
                    raise self._too_large(method)
            return Answer(response.status_code, response.reason_phrase, bytes(body))

    def _too_large(self, method: str) -> DriverError:
        # Leaving ``stream`` with the body unread closes the connection: it cannot be reused.
        return DriverError(
            f"Docker volume plugin {self.name!r} at {self.where} sent an answer to {method} "
            f"larger than {self.max_body} bytes, the limit; the connection was closed"
        )

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError


def _http_client(address: PluginAddress) -> httpx.AsyncClient:
    limits = httpx.Limits(
        max_connections=None,  # a hung call must not hold up the next on a full pool
        max_keepalive_connections=MAX_IDLE_CONNECTIONS,
        keepalive_expiry=IDLE_TIMEOUT,
    )
    verify: ssl.SSLContext | bool = (
        _ssl_context(address) if address.wire_scheme == "https" else False
    )
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    base_url = f"{address.wire_scheme}://{address.host}"
    # No proxies from the environment: plugins are local or cluster-internal services.
    client = httpx.AsyncClient(
        transport=transport,
        base_url=base_url,
        headers={"Accept": ACCEPT, "User-Agent": _USER_AGENT},
        timeout=httpx.Timeout(None, connect=DIAL_TIMEOUT),
        trust_env=False,
        follow_redirects=False,
    )
    # No compressed answers asked for (as Docker on a unix socket): the body is read raw.
    del client.headers["Accept-Encoding"]
    return client


def _ssl_context(address: PluginAddress) -> ssl.SSLContext:
    """Docker's TLS rules: system roots plus the CA file; verification as configured."""
    tls = address.tls
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls is None:
        return context
    try:
        if tls.ca_file:
            context.load_verify_locations(cafile=tls.ca_file)
        if tls.cert_file or tls.key_file:
            if not (tls.cert_file and tls.key_file):
                raise ValueError("CertFile and KeyFile must be given together")
            context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ValueError, ssl.SSLError) as error:
        raise DriverError(
            f"Docker volume plugin {address.name!r}: bad TLSConfig in {address.source}: {error}"
        ) from None
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
