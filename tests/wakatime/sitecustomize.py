# The legacy wakatime CLI (13.1.0) imports collections.Mapping, which moved to
# collections.abc in Python 3.10. Put it back before the CLI starts.
import collections
import collections.abc

for _name in ("Mapping", "MutableMapping", "Sequence", "Iterable", "Callable"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
