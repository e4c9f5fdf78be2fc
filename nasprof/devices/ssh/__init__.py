"""The ``ssh`` backend: a Linux board (a Raspberry Pi, a Jetson, any Linux host) over the real OpenSSH client.

Modules: ``settings`` (the device-file keys), ``transport`` (the ``ssh`` client with one multiplexed
connection per device, and what its failures mean), ``board_runner`` (the one standalone file shipped to
the board: nasprof's measurement protocol on onnxruntime there), ``board_info`` (parsing what the board
reports: CPU model and clusters, readiness), ``backend`` (``SshBackend``, registered as ``ssh``).
"""

from __future__ import annotations

from nasprof.devices.ssh.backend import SshBackend
from nasprof.devices.ssh.board_info import BoardInfo, board_checks, parse_cpuinfo
from nasprof.devices.ssh.settings import SshSettings
from nasprof.devices.ssh.transport import SshTransport, classify_ssh_failure, remote_path, remote_words

__all__ = [
    "BoardInfo",
    "SshBackend",
    "SshSettings",
    "SshTransport",
    "board_checks",
    "classify_ssh_failure",
    "parse_cpuinfo",
    "remote_path",
    "remote_words",
]
