"""The version of this Python package (the release of libdaxkv it comes with).

pyproject.toml reads it for the package metadata (dist-info), and
tests/suites/60-packaging.sh checks that it is configure.ac's AC_INIT
version.
"""

__version__ = "0.1.0"
