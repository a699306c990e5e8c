"""P1 baseline: a minimal hand-written python-backend model doing the echo's work
(parse the JSON body, encode the result as JSON) with the same tensors."""

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
            ctype = np.empty((1, 1), dtype=np.object_)
            ctype[0, 0] = b"application/json"
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("response", out), pb_utils.Tensor("content_type", ctype)]
                )
            )
        return responses
