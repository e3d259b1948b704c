"""Where the Hydra configs live: `marginface/conf` inside the package (in a wheel and in a checkout)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: the package that holds train.yaml and the config groups (src/marginface/conf links to conf/)
CONF_PACKAGE = "marginface.conf"


def config_dir() -> Path:
    """The folder holding train.yaml and the config groups (loss/, data/, ...)."""
    try:
        # a folder without __init__.py is a namespace package: files() gives a MultiplexedPath,
        # whose entries (not itself) are file-system paths
        path = Path(str(resources.files(CONF_PACKAGE) / "train.yaml")).parent
    except ModuleNotFoundError:
        path = None
    if path is None or not (path / "loss").is_dir():
        raise FileNotFoundError(
            f"the configs are not installed with marginface ({CONF_PACKAGE} missing or without "
            "loss/): reinstall the package (pip install .), or pass the folder holding the configs"
        )
    return path
