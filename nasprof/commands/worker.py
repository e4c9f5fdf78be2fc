"""`nasprof worker`: make this host a Ray node that serves its attached devices to a phone farm."""

from __future__ import annotations

from typing import Annotated

import typer

from nasprof.commands._common import err_console


def worker_cmd(
    devices: Annotated[
        str | None, typer.Option("--devices", help="Devices of this host's devices file to serve: "
                                                   "pixel-a,pixel-b.")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray", help="Address (HOST:PORT) of the cluster's head to join.")
    ] = None,
    head: Annotated[bool, typer.Option("--head", help="Start the cluster's head here instead.")] = False,
    port: Annotated[int, typer.Option(help="Port of the head with --head.")] = 6379,
    node_ip: Annotated[
        str | None, typer.Option("--node-ip", help="IP address this node is reached at (--head: loopback "
                                                   "by default; Ray has no authentication).")
    ] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the Ray node `nasprof worker` started here "
                                                      "(only it, not other Ray nodes of the host).")] = False,
) -> None:
    """Serve this host's devices to a Ray cluster: one custom resource per device, so `table build --ray`,
    `validate --ray` and `predictor fit --kernels --ray` on any host of the cluster measure on them here."""
    from nasprof.devices.farm import start_worker, stop_worker
    from nasprof.errors import InputError

    if stop:
        n = stop_worker()
        err_console.print(f"stopped the Ray node nasprof started here ({n} processes)", highlight=False)
        return
    if head == (ray_address is not None):
        raise InputError("give either --head (start the cluster here) or --ray HOST:PORT (join one)")
    address = start_worker((devices or "").split(","), address=ray_address, port=port, node_ip=node_ip)
    err_console.print(f"serving {devices} to the Ray cluster at {address}; drivers use --ray {address}",
                      highlight=False)
    err_console.print("note: Ray has no authentication: whoever reaches this address can run code on this "
                      "host. Keep it on a private network, or reach it through an SSH tunnel.",
                      highlight=False)
