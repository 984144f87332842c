"""Commands on other machines over ssh, copies over scp, and ssh tunnels (pathos 0.3.5).

    >>> from pathos.secure import Pipe, Copier, Tunnel
    >>> pipe = Pipe(command="hostname", host="user@remote.example.org")
    >>> pipe.launch(); print(pipe.response())                   # doctest: +SKIP
    >>> Copier(source="results.csv", destination="remote.example.org:~/").launch()  # doctest: +SKIP
    >>> tunnel = Tunnel()
    >>> local_port = tunnel.connect("remote.example.org", 8786)  # doctest: +SKIP
    >>> tunnel.disconnect()                                      # doctest: +SKIP

These run the ``ssh`` and ``scp`` programs, so everything in ``~/.ssh/config`` applies
(user names, keys, ports, jump hosts). Options for every ``ssh``/``scp`` that pathos
runs can also be given in the ``PATHOS_SSH_OPTIONS`` environment variable, e.g.
``PATHOS_SSH_OPTIONS="-F ~/.ssh/cluster_config"`` or ``"-o Port=2222 -i ~/.ssh/key"``
(use forms both programs accept: ``-F``, ``-i``, ``-o``); each launcher's own
``options=`` come after them.
"""

from .connection import Pipe as Pipe
from .copier import Copier as Copier
from .copier import FileNotFound as FileNotFound
from .tunnel import Tunnel as Tunnel
from .tunnel import TunnelException as TunnelException

__all__ = ["Copier", "FileNotFound", "Pipe", "Tunnel", "TunnelException"]
