"""P1 baseline: the minimal hand-written python-backend model a user would write for the echo's
user-visible work (parse the JSON body, answer it as JSON): one input, one output."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            body = pb_utils.get_input_tensor_by_name(request, "payload").as_numpy().reshape(-1)[0]
            out = np.empty((1, 1), dtype=np.object_)
            out[0, 0] = json.dumps(json.loads(body)).encode()
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("response", out)]))
        return responses
