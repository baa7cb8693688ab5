"""Showing and saving a composed config: the printed tree and the resolved config.yaml of a run."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# The groups printed first, in this order; any other top-level key follows.
PRINT_ORDER = ("data", "model", "optim", "scheduler", "trainer", "callbacks", "logger", "paths")


# What a nested block of a command's option file holds, for its --help.
NESTED_OPTIONS = {
    "trainer": "any Lightning Trainer argument, e.g. trainer.accelerator=gpu, trainer.devices=2, "
    "trainer.precision=bf16-mixed; trainer=cpu / trainer=gpu pick conf/trainer/<name>.yaml",
}


def config_tree(cfg: DictConfig, order: Iterable[str] = PRINT_ORDER):
    """Return a rich Tree of the resolved config, one branch per top-level group."""
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("config", guide_style="dim")
    keys = [k for k in order if k in cfg] + [k for k in cfg if k not in order]
    for key in keys:
        branch = tree.add(str(key), style="bold")
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if OmegaConf.is_config(value) else str(value)
        branch.add(Syntax(text, "yaml", theme="ansi_dark", background_color="default"))
    return tree


def print_config_tree(cfg: DictConfig) -> None:
    """Print the resolved config as a tree (rich)."""
    from rich.console import Console

    Console().print(config_tree(cfg))


def command_line_overrides() -> list[str]:
    """The overrides of the current Hydra job (empty outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return [str(o) for o in HydraConfig.get().overrides.task]


def start_summary(overrides: Sequence[str], config_path: Path) -> str:
    """What a run prints when it starts: its overrides and where the whole resolved config is."""
    changed = " ".join(overrides) if overrides else "none (the defaults of conf/train.yaml)"
    return (
        f"Overrides: {changed}\nResolved config: {config_path} (print_config=true prints it here as a tree)"
    )


def describe_options(yaml_text: str, width: int = 100) -> str:
    """The top-level keys of a command's option file as ``key=default  description`` lines, the description
    taken from the key's trailing comment (and the comment lines that continue it); a nested block such as
    ``trainer:`` is listed as ``trainer.*``. Required keys (``???``) are marked."""
    import textwrap

    entries: list[list[str]] = []  # [key, default, comment]
    in_defaults = False
    for line in yaml_text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if line[0] not in " #-":
            key, _, rest = line.partition(":")
            value, _, comment = rest.partition("#")
            in_defaults = key == "defaults"
            if not in_defaults:
                entries.append([key.strip(), value.strip(), comment.strip()])
        elif stripped.startswith("#") and line[0] == " " and entries and not in_defaults and entries[-1][2]:
            entries[-1][2] += " " + stripped.lstrip("# ")  # a comment continued on the next line
    lines = []
    for key, value, comment in entries:
        if not value:
            shown, comment = (
                f"{key}.*",
                comment or NESTED_OPTIONS.get(key, f"any {key} key: {key}.<name>=<value>"),
            )
        elif value == "???":
            shown, comment = f"{key}=...", f"(required) {comment}".strip()
        else:
            shown = f"{key}={value}"
        head = f"  {shown:<22}"
        if len(head) > 24:
            head += "\n" + " " * 24
        text = textwrap.fill(comment, width=width, initial_indent=" " * 24, subsequent_indent=" " * 24)
        lines.append(head + text[24:])
    return "\n".join(lines)


def save_resolved_config(cfg: DictConfig, path: Path) -> None:
    """Write the fully resolved config as YAML."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(cfg, resolve=True))
