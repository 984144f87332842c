"""A small XML-RPC server on pathos's selector loop (pathos 0.3.5's ``pathos.xmlrpc``).

    >>> from pathos.xmlrpc import XMLRPCServer
    >>> server = XMLRPCServer("localhost", 0)         # 0: any free port
    >>> server.register_function(pow)
    >>> server.activate()
    >>> server.serve()                                 # doctest: +SKIP  (runs until deactivate())

and from a client: ``xmlrpc.client.ServerProxy(f"http://localhost:{server.port}").pow(2, 5)``.
A call to a function registered as ``run`` is answered by a forked child, so a long
``run`` does not hold up other requests.
"""

from .server import XMLRPCRequestHandler as XMLRPCRequestHandler
from .server import XMLRPCServer as XMLRPCServer

__all__ = ["XMLRPCRequestHandler", "XMLRPCServer"]
