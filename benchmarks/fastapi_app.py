"""P3 baseline: a Cortex predictor served Cortex-style (one predict call per request) by FastAPI.

uvicorn benchmarks.fastapi_app:app --workers 2; the predictor is chosen by
BENCH_PREDICTOR=path/to/predictor.py (server_side_batching predictors get a list of one).
"""

import importlib.util
import json
import os
import sys

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

# Like Cortex (and tritonize): the project folder is the working directory and on sys.path.
project = os.path.dirname(os.path.abspath(os.environ["BENCH_PREDICTOR"]))
sys.path.insert(0, project)
os.chdir(project)
spec = importlib.util.spec_from_file_location("bench_predictor", os.environ["BENCH_PREDICTOR"])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
predictor = module.PythonPredictor(json.loads(os.environ.get("BENCH_CONFIG", "{}")))
app = FastAPI()


@app.post("/predict")
async def predict(request: Request):
    payload = await request.json()
    return JSONResponse(predictor.predict([payload])[0])
