"""The instance process as a Cortex predictor expects it: UTF-8 text and environment, readable output,
tritonize's own log.

Triton's stub embeds Python with an isolated configuration: it never calls setlocale(), so the C
locale stays "C" and Python decodes text as ASCII, whatever LANG, LC_ALL or PYTHONUTF8 say (all
ignored). model.py calls prepare_stub() before the predictor is imported; what can and cannot be
changed from here is documented in docs/predictor-environment.md.
"""

import locale
import logging
import os
import sys

log = logging.getLogger("tritonize")

# Tried in order when the environment names no usable UTF-8 locale (PEP 538's coercion targets).
UTF8_LOCALES = ("C.UTF-8", "C.utf8", "UTF-8")
LOG_FORMAT = "[tritonize %(process)d] %(levelname)s %(message)s"


def _is_utf8(codeset):
    return codeset.replace("-", "").lower() == "utf8"


def utf8_locale():
    """Set LC_CTYPE as a normal Python process does at start (from LC_ALL / LC_CTYPE / LANG), coerced
    to UTF-8 when that is the C/POSIX locale (PEP 538) -> the codeset now in effect.

    From then on open(), locale.getpreferredencoding(), subprocess' text mode and logging's
    FileHandler use it: CPython 3.11 asks the C library on each call. The filesystem encoding
    (file names, sys.argv, os.environ) was fixed when the interpreter started and stays ASCII.
    """
    try:
        locale.setlocale(locale.LC_CTYPE, "")
    except locale.Error:  # the environment names a locale this system lacks
        pass
    codeset = locale.nl_langinfo(locale.CODESET)
    if not _is_utf8(codeset) and codeset.upper() in ("ANSI_X3.4-1968", "ASCII", "US-ASCII", "646", ""):
        for name in UTF8_LOCALES:
            try:
                locale.setlocale(locale.LC_CTYPE, name)
                break
            except locale.Error:
                continue
        codeset = locale.nl_langinfo(locale.CODESET)
    return codeset


def utf8_streams():
    """stdout and stderr as UTF-8 text, line-buffered.

    They are pipes to tritonserver, opened by the stub as ASCII and block-buffered: a predictor's
    print() of non-ASCII text raised, and its output showed only when the process exited."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(encoding="utf-8", errors="backslashreplace", line_buffering=True)
        except (AttributeError, ValueError, LookupError):  # replaced by something without reconfigure
            pass


def _utf8_encode(text):
    if not isinstance(text, str):  # as os.environ's own: os.get_exec_path() relies on the TypeError
        raise TypeError(f"str expected, not {type(text).__name__}")
    return text.encode("utf-8", "surrogateescape")


def _utf8_decode(data):
    return data.decode("utf-8", "surrogateescape")


def utf8_environ(environ=None):
    """os.environ reads and writes its values (and keys) as UTF-8.

    os.environ encodes with the filesystem encoding (ASCII in the stub): setting a non-ASCII value
    from predictor.env or .env raised UnicodeEncodeError, and values tritonserver inherited read back
    as surrogates. Its _Environ keeps bytes and converts through these four attributes (CPython 3.2+)."""
    environ = os.environ if environ is None else environ
    if not all(hasattr(environ, name) for name in ("encodekey", "decodekey", "encodevalue", "decodevalue")):
        return False
    environ.encodekey = environ.encodevalue = _utf8_encode
    environ.decodekey = environ.decodevalue = _utf8_decode
    return True


def python_path_entries(project_dir, environ=None):
    """PYTHONPATH's entries (from predictor.env or the server's environment) as absolute paths, in
    order; relative ones are relative to the project, the working directory Cortex gave predictors."""
    environ = os.environ if environ is None else environ
    entries = []
    for entry in environ.get("PYTHONPATH", "").split(os.pathsep):
        if entry:
            entries.append(os.path.normpath(os.path.join(project_dir, os.path.expanduser(entry))))
    return entries


def tritonize_logger():
    """tritonize's logger in the stub: its own handler on stderr, and no propagation to the root
    logger, so that a predictor configuring logging (basicConfig, a root handler) never doubles its lines."""
    logger = logging.getLogger("tritonize")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def prepare_stub():
    """Everything above, for an instance process (model.py's initialize, before the predictor's import)."""
    codeset = utf8_locale()
    utf8_streams()
    utf8_environ()
    logger = tritonize_logger()
    if not _is_utf8(codeset):
        logger.warning("text I/O is %s, not UTF-8: no UTF-8 locale (tried %s)", codeset, ", ".join(UTF8_LOCALES))
    return logger
