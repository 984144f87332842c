"""pathos's package information: ``__version__``, ``__author__``, ``__license__``."""

from ._version import __version__ as __version__

__author__ = "the contributors of this project (an independent implementation of the pathos 0.3.5 API)"
__license__ = """pathos is distributed under the 3-clause BSD license.

Redistribution and use in source and binary forms, with or without modification, are
permitted under the terms of that license: keep the copyright notice, do not use the
names of the contributors to endorse derived products without permission; the software
is provided "as is", without warranty of any kind."""

__all__ = ["__author__", "__license__", "__version__"]
