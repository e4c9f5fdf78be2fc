"""The ``ssh`` backend: a Linux board (a Raspberry Pi, a Jetson, any Linux host) over the real OpenSSH client.

Modules: ``settings`` (the device-file keys), ``transport`` (the ``ssh`` client with one multiplexed
connection per device, and what its failures mean), ``board_runner`` (the one standalone file shipped to
the board: nasprof's measurement protocol on onnxruntime there), ``session`` (one long-lived runner per
backend on the board, its requests and answers over one ``ssh`` process), ``answers`` (what the runner's
answers and exit statuses mean, as nasprof's errors), ``result`` (an answer as a ``Measurement``),
``board_info`` (parsing what the board reports: CPU model and clusters, readiness), ``backend``
(``SshBackend``, registered as ``ssh``).
"""

from __future__ import annotations

from nasprof.devices.ssh.backend import SshBackend
from nasprof.devices.ssh.board_info import BoardInfo, board_checks, parse_cpuinfo
from nasprof.devices.ssh.session import BoardSession
from nasprof.devices.ssh.settings import SshSettings
from nasprof.devices.ssh.transport import SshTransport, classify_ssh_failure, remote_path, remote_words

__all__ = [
    "BoardInfo",
    "BoardSession",
    "SshBackend",
    "SshSettings",
    "SshTransport",
    "board_checks",
    "classify_ssh_failure",
    "parse_cpuinfo",
    "remote_path",
    "remote_words",
]
