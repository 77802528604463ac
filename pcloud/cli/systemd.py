"""`pcloud systemd-unit`: a hardened systemd service that runs `pcloud serve`."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import typer

DEFAULT_USER = "pcloud"
DEFAULT_DATA_DIR = Path("/var/lib/pcloud")
DEFAULT_ENV_FILE = Path("/etc/pcloud/pcloud.env")

UNIT = """\
# pcloud as a system service. Install (as root):
#   useradd --system --home-dir {data_dir} --shell /usr/sbin/nologin {user}
#   pcloud systemd-unit > /etc/systemd/system/pcloud.service
#   systemctl daemon-reload && systemctl enable --now pcloud
# Settings go in {env_file} (KEY=value lines, as in .env.example); logs: journalctl -u pcloud
[Unit]
Description=pcloud personal cloud
After=network-online.target postgresql.service
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={user}
ExecStart={executable} serve
WorkingDirectory={data_dir}
Environment=PCLOUD_DATA_DIR={data_dir}
EnvironmentFile=-{env_file}
# SIGTERM lets requests in flight finish before pcloud exits.
KillSignal=SIGTERM
TimeoutStopSec=90
Restart=on-failure
RestartSec=5
LimitNOFILE=65536
UMask=0077

# The data folder is the only place pcloud writes; everything else is read-only or hidden.
{state_directory}ReadWritePaths={data_dir}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateIPC=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
CapabilityBoundingSet=
AmbientCapabilities=
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""


def unit_text(user: str, data_dir: Path, env_file: Path, executable: Path) -> str:
    """The unit file. Under /var/lib, systemd makes the data folder itself (StateDirectory,
    owned by the user, mode 0700)."""
    state_directory = ""
    if data_dir.parent == Path("/var/lib"):
        state_directory = f"StateDirectory={data_dir.name}\nStateDirectoryMode=0700\n"
    return UNIT.format(
        user=user,
        data_dir=data_dir,
        env_file=env_file,
        executable=executable,
        state_directory=state_directory,
    )


def _this_pcloud() -> Path:
    """The `pcloud` program next to this Python (a venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "pcloud"
    if beside.exists():
        return beside
    found = shutil.which("pcloud")
    return Path(found).resolve() if found else beside


def systemd_unit(
    user: str = typer.Option(DEFAULT_USER, "--user", help="The system user pcloud runs as."),
    data_dir: Path = typer.Option(
        DEFAULT_DATA_DIR, "--data-dir", help="The data folder (PCLOUD_DATA_DIR) of the service."
    ),
    env_file: Path = typer.Option(
        DEFAULT_ENV_FILE, "--env-file", help="The settings file the service reads, if present."
    ),
) -> None:
    """Print a systemd unit that runs `pcloud serve` as a dedicated user, hardened (see the
    README's "Running as a service")."""
    if not data_dir.is_absolute() or not env_file.is_absolute():
        raise typer.BadParameter("--data-dir and --env-file must be absolute paths")
    typer.echo(unit_text(user, data_dir, env_file, _this_pcloud()), nl=False)
