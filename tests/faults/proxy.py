"""A TCP fault proxy: a real network hop between a client and a server that a test can break.

The proxy listens on a free loopback port and forwards every connection to its target. A test
points a client (the ledger's database URL, the blob store's S3 endpoint) at the proxy's
``address`` instead of the server, then breaks the hop on purpose:

* :meth:`~FaultProxy.refuse` closes the listener (new connections get ECONNREFUSED) and
  :meth:`~FaultProxy.forward` opens it again on the same port;
* :meth:`~FaultProxy.reset_new_connections` accepts and resets new connections, for a number of
  them or until a condition holds;
* :meth:`~FaultProxy.reset_all` resets every live connection (TCP RST, as a crashed peer or a
  dropped NAT entry looks to the client);
* :meth:`~FaultProxy.hold_replies` stops the server's bytes reaching clients (the request has
  arrived and been acted on, the answer is late) until :meth:`~FaultProxy.release_replies`.

With ``postgres=True`` the proxy also reads the PostgreSQL wire protocol the client sends, so a
fault can hit one statement of one ledger operation:

* :meth:`~FaultProxy.reset_on_statement` cuts the connection instead of forwarding a statement
  whose SQL matches (the transaction dies uncommitted);
* :meth:`~FaultProxy.lose_commit_reply` forwards the ``COMMIT`` of a transaction that ran a
  matching statement, waits until the server has answered it (so it did commit), then cuts the
  connection before that answer reaches the client: "committed, but the client never heard".

asyncpg (under SQLAlchemy) sends ``BEGIN``/``COMMIT``/``ROLLBACK`` as simple queries (a ``Q``
message; see ``asyncpg.transaction.Transaction``) and every statement as Parse/Bind/Execute,
where a cached prepared statement is bound by name without its text, so the proxy remembers
each connection's ``Parse`` messages to know what a ``Bind`` runs. It declines TLS itself
(answers ``N`` to ``SSLRequest``) so the protocol stays readable; this is loopback test traffic.

No library fits: toxiproxy needs its own server binary, ``faultlib`` needs Python 3.14, and the
asyncio proxies on PyPI only add latency or throttle, none of them speaks PostgreSQL.
"""

import asyncio
import contextlib
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_RESET: Literal["reset"] = "reset"
_LOSE_REPLY: Literal["lose_reply"] = "lose_reply"


@dataclass
class _Rule:
    kind: Literal["reset", "lose_reply"]
    statement: re.Pattern[str]
    remaining: int | None
    then: Callable[[], None] | None


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target_host:target_port``; use as ``async with``."""

    def __init__(self, target_host: str, target_port: int, *, postgres: bool = False) -> None:
        self.target = (target_host, target_port)
        self.postgres = postgres
        self.host = "127.0.0.1"
        self.port = 0
        #: One line per fault injected, in order: what a test asserts actually happened.
        self.injected: list[str] = []
        #: The server's answers (command tags) that :meth:`lose_commit_reply` kept from the
        #: client: ``["COMMIT"]`` proves the transaction committed and nobody heard.
        self.lost_replies: list[str] = []
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._rules: list[_Rule] = []
        #: While set, new connections are reset as long as it returns True.
        self._resetting: Callable[[], Awaitable[bool]] | None = None
        self._replies = asyncio.Event()
        self._replies.set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def __aenter__(self) -> "FaultProxy":
        await self._listen()
        self.port = self._bound_port()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.refuse()
        self.release_replies()
        self.reset_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- control ----------------------------------------------------------------------------

    async def forward(self) -> None:
        """Healthy again: accept and forward new connections (live ones are untouched)."""
        self._resetting = None
        if self._server is None:
            await self._listen()

    def refuse(self) -> None:
        """Close the listener: new connections are refused, live ones keep going."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def reset_new_connections(
        self, *, count: int | None = None, until: Callable[[], Awaitable[bool]] | None = None
    ) -> None:
        """Accept, then reset, new connections: the next ``count`` of them, or every one until
        ``until()`` is true (checked per connection), or all of them until :meth:`forward`."""
        remaining = count

        async def resetting() -> bool:
            nonlocal remaining
            if until is not None and await until():
                return False
            if remaining is not None:
                if remaining <= 0:
                    return False
                remaining -= 1
            return True

        self._resetting = resetting

    def reset_all(self) -> None:
        """Reset every live connection now."""
        for link in list(self._links):
            link.reset()

    def hold_replies(self) -> None:
        """Keep the server's bytes from reaching any client until :meth:`release_replies`."""
        self._replies.clear()

    def release_replies(self) -> None:
        self._replies.set()

    def reset_on_statement(
        self, statement: str, *, times: int | None = 1, then: Callable[[], None] | None = None
    ) -> None:
        """Cut the connection instead of forwarding a statement matching ``statement`` (a
        regex searched in its SQL), ``times`` times (None: always). ``then`` is called right
        after each cut (e.g. ``proxy.refuse`` to keep the database away)."""
        self._add_rule("reset", statement, times, then)

    def lose_commit_reply(
        self, statement: str, *, times: int | None = 1, then: Callable[[], None] | None = None
    ) -> None:
        """Let the server commit a transaction that ran a statement matching ``statement``,
        then cut the connection before the client hears so. ``then`` is called right after
        each cut."""
        self._add_rule("lose_reply", statement, times, then)

    # -- internals --------------------------------------------------------------------------

    def _add_rule(
        self,
        kind: Literal["reset", "lose_reply"],
        statement: str,
        times: int | None,
        then: Callable[[], None] | None,
    ) -> None:
        if not self.postgres:
            raise ValueError("statement faults need a proxy created with postgres=True")
        self._rules.append(_Rule(kind, re.compile(statement), times, then))

    def _fire(self, kind: str, sqls: list[str]) -> _Rule | None:
        """The first live rule of ``kind`` matching any of ``sqls``, used up by one."""
        for rule in self._rules:
            if rule.kind != kind or rule.remaining == 0:
                continue
            for sql in sqls:
                if rule.statement.search(sql):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    self.injected.append(f"{kind}: {' '.join(sql.split())[:120]}")
                    return rule
        return None

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )

    def _bound_port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._resetting is not None and await self._resetting():
            self.injected.append("reset: new connection")
            _abort(writer)
            return
        link = _Link(self, reader, writer)
        self._links.add(link)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await link.run()
        finally:
            self._links.discard(link)
            self._tasks.discard(task)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN, as a dead peer or middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class _Link:
    """One client connection and its upstream twin."""

    def __init__(
        self, proxy: FaultProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.proxy = proxy
        self.client = (reader, writer)
        self.server: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.statements: dict[str, str] = {}
        self.transaction: list[str] | None = None
        #: Set when a COMMIT's reply is to be lost: the rule that asked for it.
        self.swallowing: _Rule | None = None
        self.startup = True
        self.buffer = b""

    def reset(self) -> None:
        _abort(self.client[1])
        if self.server is not None:
            _abort(self.server[1])

    async def run(self) -> None:
        try:
            self.server = await asyncio.open_connection(*self.proxy.target)
        except OSError:
            _abort(self.client[1])
            return
        pumps = [
            asyncio.create_task(self._client_to_server()),
            asyncio.create_task(self._server_to_client()),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for _, writer in (self.client, self.server):
                writer.close()

    async def _client_to_server(self) -> None:
        assert self.server is not None
        reader, upstream = self.client[0], self.server[1]
        while data := await reader.read(65536):
            if not self.proxy.postgres:
                upstream.write(data)
                await upstream.drain()
                continue
            self.buffer += data
            out = bytearray()
            for message in self._messages():
                rule = self._decide(message)
                if rule is not None and rule.kind == _RESET:
                    self.reset()
                    _then(rule)
                    return
                out += message
                if rule is not None:  # lose_reply: the COMMIT itself goes through
                    self.swallowing = rule
            upstream.write(out)
            await upstream.drain()

    async def _server_to_client(self) -> None:
        assert self.server is not None
        reader, client = self.server[0], self.client[1]
        reply = b""
        while data := await reader.read(65536):
            if self.swallowing is not None:
                # Everything the server says after the COMMIT is dropped; once its
                # ReadyForQuery has arrived the commit is over, and the client is cut off.
                reply += data
                tags = _command_tags(reply)
                if tags is not None:
                    self.proxy.lost_replies.extend(tags)
                    self.reset()
                    _then(self.swallowing)
                    return
                continue
            await self.proxy._replies.wait()
            client.write(data)
            await client.drain()

    def _messages(self) -> list[bytes]:
        """Complete client messages from the buffer; answers TLS requests with ``N``."""
        messages: list[bytes] = []
        while True:
            header = 4 if self.startup else 5  # startup messages have no type byte
            if len(self.buffer) < header:
                return messages
            size = struct.unpack("!I", self.buffer[header - 4 : header])[0] + header - 4
            if len(self.buffer) < size:
                return messages
            message, self.buffer = self.buffer[:size], self.buffer[size:]
            if self.startup:
                code = struct.unpack("!I", message[4:8])[0]
                if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                    self.client[1].write(b"N")
                    continue
                self.startup = False
            messages.append(message)

    def _decide(self, message: bytes) -> _Rule | None:
        """Track what the connection runs; the rule to apply to ``message``, if any."""
        kind, body = message[:1], message[5:]
        if kind == b"P":  # Parse: statement name, SQL
            name, query = body.split(b"\0", 2)[:2]
            self.statements[name.decode()] = query.decode()
            return None
        if kind == b"B":  # Bind: portal name, statement name, parameters
            sql = self.statements.get(body.split(b"\0", 2)[1].decode(), "")
            if self.transaction is not None:
                self.transaction.append(sql)
            return self.proxy._fire(_RESET, [sql])
        if kind != b"Q":  # Describe, Execute, Sync, ...: nothing to decide
            return None
        sql = body.rstrip(b"\0").decode()
        word = sql.split(None, 1)[0].rstrip(";").upper() if sql.strip() else ""
        if word == "BEGIN":
            self.transaction = []
        elif word in ("ROLLBACK", "END", "ABORT"):
            self.transaction = None
        elif word == "COMMIT":
            ran, self.transaction = self.transaction or [], None
            rule = self.proxy._fire(_LOSE_REPLY, ran)
            if rule is not None:
                return rule
        return self.proxy._fire(_RESET, [sql])


def _then(rule: _Rule) -> None:
    if rule.then is not None:
        rule.then()


def _command_tags(data: bytes) -> list[str] | None:
    """The command tags (``C`` messages) of a server reply, once its ReadyForQuery (``Z``)
    has arrived; None while the reply is incomplete."""
    tags, offset = [], 0
    while offset + 5 <= len(data):
        kind = data[offset : offset + 1]
        end = offset + 1 + struct.unpack("!I", data[offset + 1 : offset + 5])[0]
        if end > len(data):
            return None
        if kind == b"C":
            tags.append(data[offset + 5 : end].rstrip(b"\0").decode())
        if kind == b"Z":
            return tags
        offset = end
    return None
