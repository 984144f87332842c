"""``XMLRPCServer``: a :class:`pathos.server.Server` that dispatches XML-RPC requests.

One request per connection (HTTP/1.0). Requests are answered in the selector loop,
except calls to a method named ``run``: those are answered by a forked child (see
:func:`pathos.util.spawn`), which the loop reaps when it exits.
"""

from __future__ import annotations

import logging
import os
import socket
import xmlrpc.client as client
from http.server import BaseHTTPRequestHandler
from typing import Any, BinaryIO, Callable, Optional
from xmlrpc.server import SimpleXMLRPCDispatcher

from .. import logger as logger
from ..selector import Selector
from ..server import Server
from ..util import _b, print_exc_info, spawn
from ..util import _str as _str
from ..util import spawn2 as spawn2

__all__ = ["XMLRPCRequestHandler", "XMLRPCServer"]

_log = logging.getLogger("pathos.xmlrpc")


class XMLRPCServer(Server, SimpleXMLRPCDispatcher):
    """An XML-RPC server listening on ``(host, port)``.

    Args:
        host: the address to listen on (``"localhost"``: this machine only).
        port: the port; 0 picks a free one (read it back from ``server.port``).
    """

    def __init__(self, host: str, port: int) -> None:
        Server.__init__(self)
        SimpleXMLRPCDispatcher.__init__(self, allow_none=False, encoding=None)
        self._activeProcesses: dict[BinaryIO, int] = {}  # a forked child's pipe -> its pid
        self._installSocket(host, port)

    def activate(self) -> None:  # type: ignore[override]
        """Install the selector, listening for connections."""
        Server.activate(self)
        selector = self._selector
        assert selector is not None
        selector.notifyOnReadReady(self._socket, self._onConnection)
        selector.notifyWhenIdle(self._onSelectorIdle)

    def serve(self) -> None:  # type: ignore[override]
        """Answer requests until ``deactivate()`` is called."""
        Server.serve(self, 5)

    def _installSocket(self, host: str, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(10)
        self._socket = sock
        self.host = host
        self.port: int = sock.getsockname()[1]

    def _marshaled_dispatch(  # type: ignore[override]
        self, data: bytes, dispatch_method: Optional[Callable[..., Any]] = None, path: Any = None
    ) -> bytes:
        """The XML-RPC response to ``data``; an exception becomes a fault carrying its traceback."""
        try:
            params, method = client.loads(data)
            if method is None:
                raise ValueError("the request names no method")
            dispatch = dispatch_method if dispatch_method is not None else self._dispatch
            result = dispatch(method, params)
            response = client.dumps((result,), methodresponse=True)
        except client.Fault as fault:
            response = client.dumps(client.Fault(fault.faultCode, print_exc_info()))
        except Exception:
            response = client.dumps(client.Fault(1, "\n" + print_exc_info()))
        return _b(response, "utf-8")  # type: ignore[no-any-return]

    def _onConnection(self, selector: Selector, fd: Any) -> Any:
        if isinstance(fd, socket.socket):
            return self._onSocketConnection(fd)
        return None

    def _onSocketConnection(self, socket: socket.socket) -> bool:
        conn, _ = socket.accept()
        try:
            XMLRPCRequestHandler(server=self, socket=conn).handle()
        finally:
            conn.close()  # a forked child answering the request holds its own copy
        return True

    def _onSelectorIdle(self, selector: Selector) -> bool:
        return True  # keep the loop alive while idle

    def _registerChild(self, pid: int, fromchild: BinaryIO) -> None:
        self._activeProcesses[fromchild] = pid
        assert self._selector is not None
        self._selector.notifyOnReadReady(fromchild, self._handleMessageFromChild)

    def _unRegisterChild(self, fd: BinaryIO) -> None:
        self._activeProcesses.pop(fd, None)

    def _handleMessageFromChild(self, selector: Selector, fd: BinaryIO) -> bool:
        """A child's pipe is readable: it said "done" or exited (EOF). Reap it."""
        fd.readline()
        pid = self._activeProcesses.get(fd)
        if pid is not None:
            os.waitpid(pid, 0)
        self._unRegisterChild(fd)
        fd.close()
        return False


class XMLRPCRequestHandler(BaseHTTPRequestHandler):
    """Reads one HTTP POST from ``socket`` and answers it with ``server``'s dispatcher."""

    _debug = _log

    def __init__(self, server: XMLRPCServer, socket: socket.socket) -> None:
        # BaseHTTPRequestHandler's own __init__ would handle the request at once.
        self.rfile = socket.makefile("rb", -1)
        self.wfile = socket.makefile("wb", 0)  # type: ignore[assignment]
        self.connection = socket
        self.client_address = (server.host, server.port)
        self._server = server

    def do_POST(self) -> None:
        """Dispatch the request; a call to ``run`` is answered by a forked child."""
        try:
            data = self.rfile.read(int(self.headers["content-length"]))
            _, method = client.loads(data)
        except Exception:
            _log.error(print_exc_info())
            self.send_response(400)
            self.end_headers()
            return
        if method != "run":
            self._sendResponse(self._server._marshaled_dispatch(data))
            return

        def on_parent(pid: int, fromchild: BinaryIO) -> None:
            self._server._registerChild(pid, fromchild)

        def on_child(pid: int, toparent: BinaryIO) -> None:
            try:
                self._sendResponse(self._server._marshaled_dispatch(data))
                toparent.write(b"done\n")
            except BaseException:
                _log.error(print_exc_info())
            finally:
                os._exit(0)

        spawn(on_parent, on_child)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are logged at debug level on the ``pathos.xmlrpc`` logger."""
        _log.debug("%s - - %s", self.address_string(), format % args)

    def _sendResponse(self, response: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-type", "text/xml")
        self.send_header("Content-length", str(len(response)))
        self.end_headers()
        self.wfile.write(response)
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_WR)
