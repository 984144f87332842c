"""A real OpenSSH server on 127.0.0.1 for the tests, with keys made in a temporary directory.

:func:`start_sshd` runs ``/usr/sbin/sshd -D -e -f <config>`` on a free port, with a host
key and an authorized client key of its own, and writes an ssh client config that
reaches it (``ssh -F <config> 127.0.0.1``). It needs root (sshd switches to the user
who logs in) and Debian's ``openssh-server``; :func:`missing` says what is lacking.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
HOW_TO_ENABLE = (
    "the ssh tests need OpenSSH's server and client and root: run `apt-get install -y openssh-server "
    "openssh-client` as root (scripts/test.sh does it when run as root)"
)
START_SECONDS = 15.0


@dataclass
class Sshd:
    """A running test sshd and what a client needs to reach it."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    key: Path  # the client's private key
    client_config: Path  # for ssh -F / scp -F
    directory: Path

    @property
    def options(self) -> str:
        """Explicit ssh options (``-o``/``-i`` forms, which scp takes too) that reach this server."""
        return (
            f"-o Port={self.port} -i {self.key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
        )

    def stop(self) -> None:
        """Stop sshd and whatever its sessions still run (a failed test may leave some)."""
        try:
            import psutil

            sessions = psutil.Process(self.process.pid).children(recursive=True)
        except Exception:  # psutil missing, or sshd gone
            sessions = []
        for proc in sessions:
            try:
                proc.kill()
            except Exception:
                pass
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def missing() -> str | None:
    """Why the ssh tests cannot run here, or None."""
    if not os.path.exists(SSHD) or not (shutil.which("ssh") and shutil.which("scp") and shutil.which("ssh-keygen")):
        return HOW_TO_ENABLE
    if os.geteuid() != 0:
        return HOW_TO_ENABLE + " (this run is not root)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)


def start_sshd(directory: Path) -> Sshd:
    """Start sshd on a free port of 127.0.0.1; returns once it accepts connections."""
    _keygen(directory / "host_key")
    _keygen(directory / "client_key")
    shutil.copy(directory / "client_key.pub", directory / "authorized_keys")
    port = _free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {directory}/host_key\n"
        f"AuthorizedKeysFile {directory}/authorized_keys\nPidFile {directory}/sshd.pid\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    client = directory / "ssh_config"
    client.write_text(
        f"Host *\n  Port {port}\n  IdentityFile {directory}/client_key\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  BatchMode yes\n"
        "  ConnectTimeout 10\n  LogLevel ERROR\n"
    )
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    log = open(directory / "sshd.log", "wb")  # noqa: SIM115 (sshd writes it for the whole session)
    process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    server = Sshd(process, "127.0.0.1", port, directory / "client_key", client, directory)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited: {(directory / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within {START_SECONDS} s")
