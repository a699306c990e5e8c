# ruff: noqa: E501  (predictor sources and messages are compared verbatim)
import pytest

from tritonize.adapter.signature import batch_markers, check_predictor_source
from tritonize.errors import PredictorSourceError


def check(body, class_name="PythonPredictor"):
    return check_predictor_source(body, "p.py", class_name)


@pytest.mark.parametrize("args", ["", "payload", "query_params, payload", "headers, payload, query_params"])
def test_any_subset_in_any_order(args):
    src = f"class PythonPredictor:\n    def __init__(self, config): pass\n    def predict(self{', ' if args else ''}{args}): pass\n"
    assert check(src) == [a.strip() for a in args.split(",") if a.strip()]


def test_other_class_name():
    assert check("class Mine:\n    def predict(self, payload): pass\n", "Mine") == ["payload"]


@pytest.mark.parametrize(
    "src, words",
    [
        (
            "class PythonPredictor:\n    def predict(self, payload, body): pass\n",
            "p.py:2: PythonPredictor.predict: unsupported argument 'body'; allowed: payload, query_params, headers",
        ),
        (
            "class PythonPredictor:\n    def __init__(self, config, python_client): pass\n    def predict(self): pass\n",
            "argument 'python_client' needs models in the API spec",
        ),
        (
            "class PythonPredictor:\n    def __init__(self, config, job_spec): pass\n    def predict(self): pass\n",
            "p.py:2: PythonPredictor.__init__: argument 'job_spec' is given to BatchAPI predictors only (Cortex passed it "
            "to batch jobs); set `kind: BatchAPI` in cortex.yaml (or build the file with --api-kind BatchAPI), or remove it",
        ),
        (
            "class PythonPredictor:\n    def predict(self, payload, batch_id): pass\n",
            "p.py:2: PythonPredictor.predict: argument 'batch_id' is given to BatchAPI predictors only",
        ),
        (
            "class PythonPredictor:\n    def __init__(self, cfg): pass\n    def predict(self): pass\n",
            "unsupported argument 'cfg'",
        ),
        ("class PythonPredictor:\n    def predict(self, *args): pass\n", "*args is not supported"),
        ("class PythonPredictor:\n    def predict(self, payload):\n        return (\n", "p.py:3:"),
        ("class Other:\n    pass\n", "no top-level class 'PythonPredictor' (classes found: Other); use --class"),
        ("class PythonPredictor:\n    pass\n", "has no predict() method"),
        ("class PythonPredictor:\n    async def predict(self, payload): pass\n", "async def predict is not supported"),
        (
            "class PythonPredictor:\n    def predict(self): pass\n    def post_predict(self, response, extra): pass\n",
            "post_predict: unsupported argument 'extra'",
        ),
    ],
)
def test_bad_predictors_are_rejected_with_location(src, words):
    with pytest.raises(PredictorSourceError) as err:
        check(src)
    assert words in str(err.value)


def test_syntax_error_names_file_and_line():
    with pytest.raises(PredictorSourceError) as err:
        check("x = 1\ndef f(:\n")
    assert str(err.value).startswith("p.py:2:") and "syntax error" in str(err.value)


def test_inherited_predict_is_left_to_runtime():
    assert check("class PythonPredictor(Base):\n    pass\n") is None


MULTI = "class PythonPredictor:\n    def __init__(self, config, python_client): pass\n    def load_model(self, model_path): pass\n    def predict(self): pass\n"


def test_python_client_and_load_model_with_models_in_the_spec():
    assert check_predictor_source(MULTI, "p.py", models_configured=True) == []


@pytest.mark.parametrize(
    "src, words",
    [
        (MULTI.replace(", python_client", ""), "'python_client' is a required argument when models are specified"),
        (
            MULTI.replace("    def load_model(self, model_path): pass\n", ""),
            'required method "load_model" is not defined',
        ),
        (MULTI.replace("model_path)", "path, extra)"), "expected load_model(self, model_path)"),
        ("class PythonPredictor:\n    def predict(self): pass\n", "needs __init__(self, config, python_client)"),
    ],
)
def test_models_in_the_spec_need_python_client_and_load_model(src, words):
    with pytest.raises(PredictorSourceError) as err:
        check_predictor_source(src, "p.py", models_configured=True)
    assert words in str(err.value)


@pytest.mark.parametrize(
    "init",
    [
        "self, config, python_client=None",
        "self, config, *, python_client=None",
        "self, config, job_spec=None, metrics_client=None",
        "self, config, python_client=None, job_spec={}",
        "self, config=None",
    ],
)
def test_cortex_optional_init_arguments_with_a_default_are_fine_when_not_passed(init):
    # Cortex v0.29-v0.33 passed python_client (and job_spec) only when it had them: the default applied.
    assert check(f"class PythonPredictor:\n    def __init__({init}): pass\n    def predict(self, payload): pass\n") == [
        "payload"
    ]


def test_an_unknown_init_argument_stays_an_error_with_a_default():
    with pytest.raises(PredictorSourceError, match="unsupported argument 'cfg'"):
        check("class PythonPredictor:\n    def __init__(self, config, cfg=None): pass\n    def predict(self): pass\n")


def test_python_client_with_a_default_is_passed_when_models_are_configured():
    src = "class PythonPredictor:\n    def __init__(self, config, python_client=None): pass\n    def load_model(self, model_path): pass\n    def predict(self): pass\n"
    assert check_predictor_source(src, "p.py", models_configured=True) == []


# ---- BatchAPI predictors (Cortex v0.19-v0.33) ------------------------------------------------------


def check_batch(body):
    return check_predictor_source(body, "p.py", batch=True)


@pytest.mark.parametrize("init", ["", "config", "job_spec", "job_spec, config", "config, metrics_client, job_spec"])
@pytest.mark.parametrize("args", ["", "payload", "batch_id", "batch_id, payload"])
def test_a_batch_predictor_takes_any_subset_in_any_order(init, args):
    src = (
        f"class PythonPredictor:\n    def __init__(self{', ' if init else ''}{init}): pass\n"
        f"    def predict(self{', ' if args else ''}{args}): pass\n    def on_job_complete(self): pass\n"
    )
    assert check_batch(src) == [a.strip() for a in args.split(",") if a.strip()]


@pytest.mark.parametrize(
    "src, words",
    [
        (
            "class PythonPredictor:\n    def predict(self, payload, headers): pass\n",
            "p.py:2: PythonPredictor.predict: argument 'headers' is given to RealtimeAPI predictors only; a BatchAPI's "
            "predict takes payload, batch_id (any subset, any order)",
        ),
        (
            "class PythonPredictor:\n    def predict(self, query_params): pass\n",
            "argument 'query_params' is given to RealtimeAPI predictors only",
        ),
        (
            "class PythonPredictor:\n    def __init__(self, config, python_client): pass\n    def predict(self): pass\n",
            "p.py:2: PythonPredictor.__init__: argument 'python_client' is given to RealtimeAPI predictors only; a "
            "BatchAPI's __init__ takes config, metrics_client, job_spec",
        ),
        (
            "class PythonPredictor:\n    def predict(self, payload): pass\n    def on_job_complete(self, results): pass\n",
            "p.py:3: PythonPredictor.on_job_complete: expected on_job_complete(self) (Cortex passed no arguments)",
        ),
        (
            "class PythonPredictor:\n    def predict(self, payload, body): pass\n",
            "unsupported argument 'body'; allowed: payload, batch_id",
        ),
    ],
)
def test_a_batch_predictor_with_a_realtime_argument_is_refused_clearly(src, words):
    with pytest.raises(PredictorSourceError) as err:
        check_batch(src)
    assert words in str(err.value)


def test_an_argument_of_the_other_kind_with_a_default_is_accepted_and_never_passed():
    realtime = "class PythonPredictor:\n    def __init__(self, config, job_spec=None): pass\n    def predict(self, payload, batch_id=None): pass\n"
    assert check(realtime) == ["payload", "batch_id"]
    batch = "class PythonPredictor:\n    def __init__(self, config, python_client=None): pass\n    def predict(self, payload, headers=None): pass\n"
    assert check_batch(batch) == ["payload", "headers"]


@pytest.mark.parametrize(
    "src, markers",
    [
        ("class PythonPredictor:\n    def predict(self, payload): pass\n", []),
        ("class PythonPredictor:\n    def predict(self, payload, batch_id): pass\n", ["predict() takes batch_id"]),
        ("class PythonPredictor:\n    def predict(self, payload, batch_id=None): pass\n", []),
        (
            "class PythonPredictor:\n    def __init__(self, job_spec): pass\n    def predict(self, batch_id): pass\n",
            ["__init__() takes job_spec", "predict() takes batch_id"],
        ),
        ("class Other:\n    def predict(self, batch_id): pass\n", []),
    ],
)
def test_batch_markers_say_why_a_predictor_file_is_a_batch_api(src, markers):
    assert batch_markers(src) == markers
