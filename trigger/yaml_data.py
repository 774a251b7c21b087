"""YAML files read as data only: a safe loader that also refuses duplicate keys and documents whose aliases
expand beyond ``MAX_YAML_VALUES`` values (an alias bomb is refused in milliseconds, before any value is built).

Every YAML file trigger reads goes through ``read_yaml`` (trigger.yml, budgets, scan grids, hls4ml configs)."""

from __future__ import annotations

from pathlib import Path

from trigger.errors import ConfigError, TriggerError

MAX_YAML_VALUES = 100_000  # scalars, lists and mappings of a file with its aliases expanded


def _short(value, limit: int = 60) -> str:
    """repr(value), cut to one short line (a huge value must not become a huge message)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class _Refused(Exception):
    """A YAML document refused while it is read (duplicate key, alias bomb); the reader names the file."""


def _loader():
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """yaml.SafeLoader that refuses duplicate keys and documents whose aliases expand beyond a small size
        (the expansion is counted on the node graph, before any value is built)."""

        def compose_document(self):
            node = super().compose_document()
            _expanded_size(node, {}, set())
            return node

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        if key in seen:
                            raise _Refused(f"line {key_node.start_mark.line + 1}: duplicate key {_short(key)} "
                                           f"(first on line {seen[key]})")
                        seen[key] = key_node.start_mark.line + 1
                    except TypeError:  # an unhashable key: SafeLoader's own error follows
                        continue
            return super().construct_mapping(node, deep)

    return StrictLoader


def _expanded_size(node, sizes: dict, open_nodes: set) -> int:
    """How many values ``node`` stands for with every alias written out (each shared node counted once per use)."""
    import yaml

    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise _Refused(f"line {node.start_mark.line + 1}: an alias refers to the list or mapping that holds it")
    open_nodes.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes, open_nodes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes, open_nodes) + _expanded_size(v, sizes, open_nodes) for k, v in node.value)
    open_nodes.discard(key)
    if size > MAX_YAML_VALUES:
        raise _Refused(f"line {node.start_mark.line + 1}: its aliases expand to more than {MAX_YAML_VALUES:,} values")
    sizes[key] = size
    return size


def load_yaml(text: str, where: str, error: type[TriggerError] = ConfigError):
    """The data of YAML ``text`` (safe: data only), or a one-line ``error`` naming ``where``."""
    import yaml

    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506  (a SafeLoader subclass)
    except _Refused as err:
        raise error(f"{where}: {err}") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply") from None
    except yaml.YAMLError as err:
        raise error(f"{where}: not valid YAML ({str(err).splitlines()[0]})") from None


def read_yaml(path, error: type[TriggerError] | None = None, missing: str | None = None):
    """The data of a YAML file (``load_yaml``), or a one-line ``error`` (ConfigError by default) naming the file
    when it is missing (``missing``: the message), unreadable or not YAML."""
    error = error or ConfigError
    path = Path(path)
    if not path.exists():
        raise error(missing or f"{path} not found")
    if not path.is_file():
        raise error(f"{path}: not a file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise error(f"{path}: cannot be read ({err.__class__.__name__})") from None
    return load_yaml(text, str(path), error)
