"""Cortex's request objects without starlette: QueryParams, Headers, FormData, UploadFile.

Cortex passed starlette's classes to predict(); these behave the same for what
predictors use (mapping access, `getlist`, case-insensitive headers, `multi_items`),
and are dict subclasses so that `json.dumps(query_params)` and `dict(headers)` work.
Single values: QueryParams/FormData give the last one, Headers the first, as starlette does.
"""

import io
from urllib.parse import urlencode


class ImmutableMultiDict(dict):
    """A dict of the last value per key that also remembers every (key, value) pair."""

    __slots__ = ("_list",)

    def __init__(self, pairs=()):
        if isinstance(pairs, dict):
            pairs = list(pairs.multi_items() if isinstance(pairs, ImmutableMultiDict) else pairs.items())
        else:
            pairs = list(pairs)
        super().__init__(pairs)
        self._list = pairs

    def getlist(self, key):
        return [value for name, value in self._list if name == key]

    def multi_items(self):
        return list(self._list)

    def _readonly(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} is immutable")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly

    def __reduce__(self):  # copy/pickle rebuild from the pairs (item assignment is refused)
        return type(self), (self._list,)

    def __repr__(self):
        return f"{type(self).__name__}({self._list!r})"


class QueryParams(ImmutableMultiDict):
    __slots__ = ()

    def __str__(self):
        return urlencode(self._list)


class FormData(ImmutableMultiDict):
    """Form fields: str values, or UploadFile for file parts."""

    __slots__ = ()

    def close(self):
        for _, value in self._list:
            if isinstance(value, UploadFile):
                value.close()


class Headers(dict):
    """Header names lower-cased; lookups ignore case; repeated lines kept for getlist().

    Like starlette: headers[key] is the first line's value; keys()/values()/items()
    list every line, duplicates included.
    """

    __slots__ = ("_list",)

    def __init__(self, pairs=()):
        self._fill(
            [(str(name).lower(), value) for name, value in (pairs.items() if isinstance(pairs, dict) else pairs)]
        )

    @classmethod
    def from_lower_case(cls, pairs):
        """From a list of (lower-case name, value) pairs, taken as is (the runtime's hot path)."""
        headers = cls.__new__(cls)
        headers._fill(pairs)
        return headers

    def _fill(self, pairs):
        dict.__init__(self, pairs)
        if len(self) != len(pairs):  # repeated lines: the first value wins, as in starlette
            dict.__init__(self, reversed(pairs))
        self._list = pairs

    def __getitem__(self, key):
        return dict.__getitem__(self, key.lower() if isinstance(key, str) else key)

    def __contains__(self, key):
        return isinstance(key, str) and dict.__contains__(self, key.lower())

    def get(self, key, default=None):
        return dict.get(self, key.lower(), default) if isinstance(key, str) else default

    def getlist(self, key):
        key = key.lower()
        return [value for name, value in self._list if name == key]

    def keys(self):
        return [name for name, _ in self._list]

    def values(self):
        return [value for _, value in self._list]

    def items(self):
        return list(self._list)

    @property
    def raw(self):
        return [(name.encode("latin-1", "replace"), value.encode("latin-1", "replace")) for name, value in self._list]

    def _readonly(self, *args, **kwargs):
        raise TypeError("Headers is immutable; copy it with dict(headers)")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly

    def __reduce__(self):
        return type(self), (self._list,)

    def __repr__(self):
        return f"Headers({self._list!r})"


class UploadFile:
    """A file part of a multipart form (starlette's UploadFile, with synchronous methods:
    a Cortex predictor's predict() is a plain def and could never await them)."""

    def __init__(self, filename, data, content_type="", headers=None):
        self.filename = filename
        self.content_type = content_type
        self.headers = headers if headers is not None else Headers()
        self.size = len(data)
        self.file = io.BytesIO(data)

    def read(self, size=-1):
        return self.file.read(size)

    def seek(self, offset):
        return self.file.seek(offset)

    def write(self, data):
        return self.file.write(data)

    def close(self):
        self.file.close()

    def __repr__(self):
        return f"UploadFile(filename={self.filename!r}, size={self.size}, content_type={self.content_type!r})"
