"""Check a predictor's class and method signatures by parsing, never importing, it."""

import ast

from tritonize.adapter.runtime.constants import (
    BATCH_INIT_ARGS,
    BATCH_PREDICT_ARGS,
    INIT_ARGS,
    POST_PREDICT_ARGS,
    PREDICT_ARGS,
)
from tritonize.errors import PredictorSourceError

# Given to __init__ only when the spec configures models (predictor.multi_model_reloading).
MODELS_INIT_ARG = "python_client"
LOAD_MODEL_ARGS = ["model_path"]
# Cortex injected these into __init__ for features tritonize does not have (yet).
UNSUPPORTED_INIT_ARGS = {
    "tensorflow_client": "TensorFlow serving (tensorflow_client)",
    "onnx_client": "ONNX predictors (onnx_client)",
}
# Arguments only one kind of API gets: named on the other kind (without a default), a build error saying so.
BATCH_ONLY = {"job_spec": "__init__", "batch_id": "predict"}
REALTIME_ONLY = {"python_client": "__init__", "query_params": "predict", "headers": "predict"}
BATCH_HINT = "set `kind: BatchAPI` in cortex.yaml (or build the file with --api-kind BatchAPI)"


def _method_args(func, where):
    args = func.args
    if args.vararg or args.kwarg:
        star = "*" + args.vararg.arg if args.vararg else "**" + args.kwarg.arg
        raise PredictorSourceError(f"{where}: {star} is not supported; name the arguments you need")
    positional = args.posonlyargs + args.args
    if not positional or positional[0].arg != "self":
        raise PredictorSourceError(f"{where}: the first argument must be self")
    return [a.arg for a in positional[1:]] + [a.arg for a in args.kwonlyargs]


def _with_defaults(func):
    """The names of a method's arguments that have a default value."""
    args = func.args
    positional = args.posonlyargs + args.args
    named = [a.arg for a in positional[len(positional) - len(args.defaults) :]] if args.defaults else []
    return set(named) | {a.arg for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None}


def _check_names(names, allowed, where):
    for name in names:
        if name not in allowed:
            raise PredictorSourceError(
                f"{where}: unsupported argument {name!r}; allowed: {', '.join(allowed)} (any subset, any order)"
            )


def _check_python_client(init_names, models_configured, where):
    if MODELS_INIT_ARG in init_names and not models_configured:
        raise PredictorSourceError(
            f"{where}: argument 'python_client' needs models in the API spec: add predictor.multi_model_reloading "
            "with path, paths or dir to the cortex.yaml (Cortex passed python_client only then)"
        )
    if models_configured and MODELS_INIT_ARG not in init_names:
        raise PredictorSourceError(
            f"{where}: 'python_client' is a required argument when models are specified in the api spec "
            "(predictor.multi_model_reloading); add it to __init__"
        )


def _check_models_methods(cls, methods, filename, class_name):
    """With models in the spec, Cortex required __init__(..., python_client) and load_model(self, model_path)."""
    if "__init__" not in methods and not cls.bases:
        raise PredictorSourceError(
            f"{filename}:{cls.lineno}: class {class_name} needs __init__(self, config, python_client) "
            "when models are specified in the api spec"
        )
    load = methods.get("load_model")
    if load is None:
        if cls.bases:
            return  # may be inherited; checked when the API loads
        raise PredictorSourceError(
            f'{filename}:{cls.lineno}: class {class_name}: required method "load_model" is not defined '
            "(when models are specified in the api spec, load_model(self, model_path) is required)"
        )
    where = f"{filename}:{load.lineno}: {class_name}.load_model"
    if _method_args(load, where) != LOAD_MODEL_ARGS:
        raise PredictorSourceError(f"{where}: expected load_model(self, model_path)")


def _passed(name, models_configured, batch=False):
    """Whether the runtime gives __init__ or predict() this argument (adapter/runtime/predictor.py); names
    Cortex never injected count as passed (an unknown argument stays an error, default or not)."""
    if name == MODELS_INIT_ARG:
        return models_configured and not batch
    if name in BATCH_ONLY:
        return batch
    if name in REALTIME_ONLY:
        return not batch
    return name not in UNSUPPORTED_INIT_ARGS


def _check_kind(names, method, batch, where):
    """An argument of the other kind of API (job_spec, batch_id on a RealtimeAPI; query_params, headers,
    python_client on a BatchAPI): a clear error naming the kind."""
    for name in names:
        if not batch and BATCH_ONLY.get(name) == method:
            raise PredictorSourceError(
                f"{where}: argument {name!r} is given to BatchAPI predictors only (Cortex passed it to batch jobs); "
                f"{BATCH_HINT}, or remove it"
            )
        if batch and REALTIME_ONLY.get(name) == method:
            allowed = ", ".join(BATCH_INIT_ARGS if method == "__init__" else BATCH_PREDICT_ARGS)
            raise PredictorSourceError(
                f"{where}: argument {name!r} is given to RealtimeAPI predictors only; a BatchAPI's {method} "
                f"takes {allowed} (any subset, any order)"
            )


def check_on_job_complete(methods, filename, class_name, batch):
    """A BatchAPI's optional on_job_complete(self), called once after the job's last batch."""
    method = methods.get("on_job_complete")
    if method is None or not batch:
        return
    where = f"{filename}:{method.lineno}: {class_name}.on_job_complete"
    if isinstance(method, ast.AsyncFunctionDef):
        raise PredictorSourceError(f"{where}: async def is not supported; use def")
    if [n for n in _method_args(method, where) if n not in _with_defaults(method)]:
        raise PredictorSourceError(f"{where}: expected on_job_complete(self) (Cortex passed no arguments)")


def _batch_markers(init, predict):
    """Why a predictor file reads as a BatchAPI's: the batch-only arguments it names without a default."""
    found = []
    for method, func in (("__init__", init), ("predict", predict)):
        if func is None:
            continue
        try:
            names = _method_args(func, method)
        except PredictorSourceError:
            continue
        defaulted = _with_defaults(func)
        found += [f"{method}() takes {n}" for n in names if BATCH_ONLY.get(n) == method and n not in defaulted]
    return found


def batch_markers(source, class_name="PythonPredictor"):
    """["predict() takes batch_id", ...]: why `tritonize build predictor.py` builds a BatchAPI ([]: a
    RealtimeAPI). The source must parse; a class it lacks has none."""
    tree = ast.parse(source)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if cls is None:
        return []
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    return _batch_markers(methods.get("__init__"), methods.get("predict"))


def check_predictor_source(source, filename, class_name="PythonPredictor", models_configured=False, batch=False):
    """Return the argument names of predict(); raise PredictorSourceError if unusable.

    models_configured: the spec has predictor.multi_model_reloading (python_client, load_model).
    batch: a BatchAPI's predictor: __init__(config, job_spec, metrics_client), predict(payload, batch_id),
    optional on_job_complete(self).
    """
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise PredictorSourceError(f"{filename}:{exc.lineno}:{exc.offset or 0}: syntax error: {exc.msg}") from None
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    cls = next((node for node in classes if node.name == class_name), None)
    if cls is None:
        found = ", ".join(node.name for node in classes) or "none"
        raise PredictorSourceError(
            f"{filename}: no top-level class {class_name!r} (classes found: {found}); use --class to pick another"
        )
    methods = {node.name: node for node in cls.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    init = methods.get("__init__")
    if init is not None:
        where = f"{filename}:{init.lineno}: {class_name}.__init__"
        names = _method_args(init, where)
        # Cortex passed its optional arguments only when it had them: one with a default is fine when tritonize
        # would not pass it (the default applies), e.g. __init__(self, config, python_client=None) without models.
        defaulted = _with_defaults(init)
        names = [n for n in names if n not in defaulted or _passed(n, models_configured, batch)]
        for name in names:
            if name in UNSUPPORTED_INIT_ARGS:
                raise PredictorSourceError(
                    f"{where}: argument {name!r} is not supported yet: tritonize has no {UNSUPPORTED_INIT_ARGS[name]}"
                )
        _check_kind(names, "__init__", batch, where)
        if batch:
            _check_names(names, list(BATCH_INIT_ARGS), where)
        else:
            _check_python_client(names, models_configured, where)
            _check_names(names, list(INIT_ARGS), where)  # python_client without models: refused above
    if models_configured:
        _check_models_methods(cls, methods, filename, class_name)
    predict = methods.get("predict")
    if predict is None:
        if cls.bases:
            return None  # may be inherited; `tritonize test` checks it for real
        raise PredictorSourceError(f"{filename}:{cls.lineno}: class {class_name} has no predict() method")
    if isinstance(predict, ast.AsyncFunctionDef):
        raise PredictorSourceError(f"{filename}:{predict.lineno}: async def predict is not supported; use def")
    where = f"{filename}:{predict.lineno}: {class_name}.predict"
    predict_args = _method_args(predict, where)
    defaulted = _with_defaults(predict)
    _check_kind([n for n in predict_args if n not in defaulted], "predict", batch, where)
    allowed = BATCH_PREDICT_ARGS if batch else PREDICT_ARGS
    # An argument of the other kind with a default is never passed: its default applies.
    kind_specific = {**BATCH_ONLY, **REALTIME_ONLY}
    _check_names([n for n in predict_args if n not in defaulted or n not in kind_specific], allowed, where)
    check_on_job_complete(methods, filename, class_name, batch)
    post = methods.get("post_predict")
    if post is not None:
        where = f"{filename}:{post.lineno}: {class_name}.post_predict"
        _check_names(_method_args(post, where), POST_PREDICT_ARGS, where)
    return predict_args


def _yields(function):
    """Whether a function's own body yields (nested functions, lambdas and classes do not count)."""
    stack = list(function.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(ast.iter_child_nodes(node))
    return False


def predict_is_generator(source, class_name="PythonPredictor"):
    """True if the class's own predict() is a generator function (a streaming API); None if the
    class has no predict() of its own (inherited: unknown without importing). Source must parse."""
    tree = ast.parse(source)
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    predict = (
        None
        if cls is None
        else next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "predict"), None)
    )
    return None if predict is None else _yields(predict)
