"""Check a predictor's class and method signatures by parsing, never importing, it."""

import ast

from tritonize.adapter.runtime.constants import INIT_ARGS, POST_PREDICT_ARGS, PREDICT_ARGS
from tritonize.errors import PredictorSourceError

# Given to __init__ only when the spec configures models (predictor.multi_model_reloading).
MODELS_INIT_ARG = "python_client"
LOAD_MODEL_ARGS = ["model_path"]
# Cortex injected these into __init__ for features tritonize does not have (yet).
UNSUPPORTED_INIT_ARGS = {
    "job_spec": "batch jobs (job_spec)",
    "tensorflow_client": "TensorFlow serving (tensorflow_client)",
    "onnx_client": "ONNX predictors (onnx_client)",
}


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


def _passed(name, models_configured):
    """Whether the runtime gives __init__ this argument (adapter/runtime/predictor.py); names Cortex never
    injected count as passed (an unknown argument stays an error, default or not)."""
    if name == MODELS_INIT_ARG:
        return models_configured
    return name not in UNSUPPORTED_INIT_ARGS


def check_predictor_source(source, filename, class_name="PythonPredictor", models_configured=False):
    """Return the argument names of predict(); raise PredictorSourceError if unusable.

    models_configured: the spec has predictor.multi_model_reloading (python_client, load_model).
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
        names = [n for n in names if n not in defaulted or _passed(n, models_configured)]
        for name in names:
            if name in UNSUPPORTED_INIT_ARGS:
                raise PredictorSourceError(
                    f"{where}: argument {name!r} is not supported yet: tritonize has no {UNSUPPORTED_INIT_ARGS[name]}"
                )
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
    _check_names(predict_args, PREDICT_ARGS, where)
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
