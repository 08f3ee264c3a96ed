"""One mechanism for the house's extension points (cleaning blocks, graders, labelers): a
package whose every module declares one spec object under a fixed name (`BLOCK = BlockSpec(...)`,
`GRADER = GraderSpec(...)`, ...). `collect` imports them all, so adding an extension is a new
module in its package (and its test and docs), nothing else."""

from __future__ import annotations

import importlib
import pkgutil
from collections import Counter
from typing import TypeVar

Spec = TypeVar("Spec")


def collect(package: str, attr: str, spec_type: type[Spec], *, unique: tuple[str, ...] = ("name",)) -> list[Spec]:
    """The `attr` of every public module of `package` (a dotted name), in module-name order
    (modules named _like_this are helpers the extensions share, and are skipped). A module
    without one, or two specs sharing a value of an attribute in `unique`, is a TypeError: a
    developer's mistake, found when the registry is first read."""
    root = importlib.import_module(package)
    specs: list[Spec] = []
    for info in pkgutil.iter_modules(root.__path__):
        if info.name.startswith("_"):  # a private helper shared by several of the package's modules
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        spec = getattr(module, attr, None)
        if not isinstance(spec, spec_type):
            raise TypeError(f"{module.__name__} is in the {package} package but declares no "
                            f"{attr} = {spec_type.__name__}(...)")
        specs.append(spec)
    for name in unique:
        seen = Counter(getattr(spec, name) for spec in specs)
        if clash := [value for value, n in seen.items() if n > 1]:
            raise TypeError(f"two modules of {package} declare the same {name}: {clash}")
    return specs
