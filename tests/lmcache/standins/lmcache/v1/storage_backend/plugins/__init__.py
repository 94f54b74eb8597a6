# SPDX-License-Identifier: Apache-2.0
"""Storage plugin implementations shipped in-tree (LMCache's package
docstring: loaded via ``storage_plugins`` + ``extra_config.storage_plugin.<name>.*``)."""
