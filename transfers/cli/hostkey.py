"""``transfers hostkey show HOST[:PORT]``: what an SFTP server offers as its host keys, for a reviewed pin."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from transfers.cli._console import EXIT_CONFIG, EXIT_RETRY, err, load_settings, out

app = typer.Typer(help="SFTP servers' host keys.", no_args_is_help=True)

#: How ``ssh-keygen -lf`` names each key type, so the lines can be compared with the partner's.
_KIND = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA", "ecdsa-sha2-nistp256": "ECDSA", "ecdsa-sha2-nistp384": "ECDSA",
         "ecdsa-sha2-nistp521": "ECDSA"}


def split_address(address: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6-address]:port`` as (host, port); port 22 when none is given.

    Raises:
        ValueError: Not a host with an optional TCP port.
    """
    host, port = address, "22"
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError("expected [address]:port")
            port = rest[1:]
    elif address.count(":") == 1:
        host, port = address.split(":")
    if not host or any(c in host for c in "\x00\n\r /") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST or HOST:PORT")
    return host, int(port)


@app.command("show")
def hostkey_show(
    address: Annotated[str, typer.Argument(metavar="HOST[:PORT]", help="the SFTP server (port 22 if not given)")],
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=1, help="seconds each wait may take (default TRANSFERS_SFTP_TIMEOUT)")] = None,
) -> None:
    """Print each host key the server offers (type, SHA256 fingerprint, the line to pin); trusts nothing.

    No login: only the SSH key exchange, once per key type. Compare the fingerprints with the
    partner by another channel (telephone, signed email) before pinning a key in the connection's
    extra.host_keys; this command never changes a pin.
    """
    import paramiko

    from transfers.delivery.hostkeys import known_hosts_name, scan_host_keys
    from transfers.delivery.session import DISABLED_ALGORITHMS

    try:
        host, port = split_address(address)
    except ValueError as exc:
        err.print(f"[bold red]error:[/] {escape(address)!r}: {exc}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    wait = timeout if timeout is not None else load_settings().sftp_timeout
    try:
        offered = scan_host_keys(host, port, timeout=wait, disabled_algorithms=DISABLED_ALGORITHMS)
    except (OSError, EOFError, paramiko.SSHException) as exc:
        err.print(f"[bold red]temporary failure:[/] SFTP server {host}:{port}: cannot read its host keys "
                  f"({type(exc).__name__}: {escape(str(exc))[:200]})", highlight=False)
        raise typer.Exit(EXIT_RETRY) from None
    if not offered:
        err.print(f"[bold red]error:[/] SFTP server {host}:{port} offered no host key of a type we can pin "
                  "(ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa with SHA-2)", highlight=False)
        raise typer.Exit(EXIT_RETRY)
    name = known_hosts_name(host, port)
    out.print(f"host keys offered by {host}:{port} (as ssh-keygen -lf shows them):", highlight=False)
    for key in offered:  # one line each, never folded: a fingerprint is read out whole
        out.print(f"  {key.bits} {key.fingerprint} {name} ({_KIND.get(key.key_type, key.key_type)})",
                  highlight=False, markup=False)
    out.print("known_hosts lines:")
    for key in offered:
        out.print(f"  {name} {key.line}", highlight=False, markup=False)
    out.print("as a pin in the connection's extra (add \"until\": \"YYYY-MM-DD\" to the key it replaces):")
    for key in offered:
        out.print(f"  {json.dumps({'key': key.line})}", highlight=False, markup=False)
    out.print(f"Nothing was trusted or stored, and no login was tried. Check each fingerprint with the partner "
              f"by another channel before pinning it: anyone between here and {host}:{port} could have answered.",
              highlight=False)
