"""The recipes: configs that ship with the package, addressed by name wherever a config path is
taken (`seq2seq train translation`, `config.load("translation")`).

Each recipe is one YAML file here; its first comment line says what it trains.
"""

import pathlib

DIRECTORY = pathlib.Path(__file__).parent


def names():
    """Every recipe's name, sorted."""
    return sorted(path.stem for path in DIRECTORY.glob("*.yaml"))


def path(name):
    """The YAML file of recipe `name`."""
    if name not in names():
        raise FileNotFoundError(f"No recipe named {name!r}; expected one of "
                                f"{', '.join(names())}.")
    return DIRECTORY / f"{name}.yaml"


def describe(name):
    """The recipe's first comment line."""
    first = path(name).read_text().splitlines()[0]
    return first.lstrip("#").strip()


def resolve(path_or_name):
    """A config file's path: an existing file as it is, else a recipe's name. Raises
    FileNotFoundError naming both what was looked for and the recipes there are."""
    candidate = pathlib.Path(path_or_name)
    if candidate.exists():
        return candidate
    if str(path_or_name) in names():
        return path(str(path_or_name))
    raise FileNotFoundError(f"Config file {path_or_name} does not exist, and it is not a "
                            f"recipe's name; expected a YAML file or one of {', '.join(names())}"
                            " (`seq2seq recipes` lists them).")
