"""The version of td-hpc, read by hatchling (pyproject ``[tool.hatch.version]``) and re-exported by ``td_hpc``.

It lives in its own module so that the script writers can stamp it into the scripts they generate without
importing the package that imports them.
"""

__version__ = "0.1.0"
