"""Where the packaged config tree lives, for editable installs and built wheels alike."""

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent  # ganlab/


def config_dir() -> Path:
    """The `configs/` tree: `ganlab/configs` inside a wheel, the repository's `configs/` otherwise."""
    for candidate in (_PACKAGE_DIR / "configs", _PACKAGE_DIR.parent / "configs"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"ganlab's configs/ tree was not found next to {_PACKAGE_DIR}; reinstall ganlab")


def config_groups() -> dict[str, list[str]]:
    """Each config group and its options, as `ganlab --help` lists them."""
    root = config_dir()
    return {
        group.name: sorted(p.stem for p in group.glob("*.yaml"))
        for group in sorted(root.iterdir())
        if group.is_dir() and not group.name.startswith(("_", ".")) and group.name != "hydra"  # Hydra's own
    }


def compose(overrides: list[str] = ()):
    """The job config `ganlab train` composes from ganlab's configs and `overrides` (for scripts:
    benchmarks, notebooks); without the vetting, so for overrides you write yourself."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))
