import json


class PythonPredictor:
    def __init__(self, config, job_spec):
        self.config, self.job_id = config, job_spec["job_id"]

    def predict(self, payload, batch_id):
        with open(f"/tmp/{self.job_id}-{batch_id}.json", "w") as f:
            json.dump(payload, f)

    def on_job_complete(self):
        pass
