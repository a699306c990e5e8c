"""`tritonize test`: load a predictor in this process and answer one request, no Triton."""

import json
import os

from tritonize.adapter.build import load_apis
from tritonize.adapter.errors import SpecError
from tritonize.adapter.repository import api_settings, check_api_sources
from tritonize.adapter.runtime.device import device_config
from tritonize.adapter.runtime.handler import handle_request
from tritonize.adapter.runtime.params import CONTENT_TYPE_PARAMETER, ParameterRules
from tritonize.adapter.runtime.predictor import load_predictor


def select_api(apis, api_name):
    if api_name is None:
        if len(apis) > 1:
            raise SpecError(f"the spec has {len(apis)} APIs ({', '.join(a.name for a in apis)}); pick one with --api")
        return apis[0]
    for api in apis:
        if api.name == api_name:
            return api
    raise SpecError(f"no API named {api_name!r} (found: {', '.join(a.name for a in apis)})")


def dry_run(source, body, content_type=None, query_params=None, headers=None, api_name=None,
            class_name="PythonPredictor", config=None, header_pattern=None):
    """Returns (Reply, warnings). Uses the same decode/predict/encode code as the server."""
    apis = load_apis(source, class_name=class_name, config=config)
    api = select_api(apis, api_name)
    check_api_sources([api])
    rules = ParameterRules(header_pattern=header_pattern)
    warnings = list(api.warnings)
    pairs = dict(query_params or {})
    if content_type:
        pairs[CONTENT_TYPE_PARAMETER] = content_type
    for key, value in (headers or {}).items():
        if rules.is_header(key):
            pairs[key] = value
        else:
            warnings.append(f"header {key!r} would not be forwarded by the server (pattern {rules.header_regex.pattern!r})")
    cwd = os.getcwd()
    try:
        settings = api_settings(api)
        # No instance process to pin here: the predictor runs in this process, told "cpu".
        predictor = load_predictor(api.project_dir, settings, extra_config=device_config(settings, "cpu"))
        return handle_request(predictor, body, json.dumps(pairs), rules), warnings
    finally:
        os.chdir(cwd)
