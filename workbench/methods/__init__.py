"""One module per method, with explicit arguments or typed configs: no profiles, grids, data loaders or paper
numbers (those belong to `workbench.studies`). Methods never import `studies` or `viz`.

Importing the package imports every module in it, so every part registered with `workbench.registry.register`
(heads, text models, fusions, projections, losses, augmenters) can be built by name.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
