"""A BatchAPI predictor (Cortex v0.19-v0.33): predict() gets one batch of items; results go to a folder."""

import json
import os

from scoring import score


class PythonPredictor:
    def __init__(self, config, job_spec):
        # config: the API's predictor.config with the job's config merged over it (the job's values win).
        self.lexicon = config["lexicon"]
        self.dest = os.path.join(config["dest"], job_spec["job_id"])
        os.makedirs(self.dest, exist_ok=True)

    def predict(self, payload, batch_id):
        results = [{"text": text, **score(text, self.lexicon)} for text in map(self._text, payload)]
        path = os.path.join(self.dest, f"{batch_id}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(results, f)
        os.replace(path + ".tmp", path)  # a batch retried after a crash leaves no half-written file

    def on_job_complete(self):
        # Called once, after the last batch: gather the batches' results into one file.
        rows = []
        for name in sorted(os.listdir(self.dest)):
            if name.endswith(".json"):
                with open(os.path.join(self.dest, name)) as f:
                    rows += json.load(f)
        with open(os.path.join(self.dest, "results.jsonl"), "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)

    @staticmethod
    def _text(item):
        """An item: {"text": ...} (item_list, delimited_files), or a text file's path (file_path_lister)."""
        if isinstance(item, dict):
            return item["text"]  # a KeyError fails this batch only: it goes to the dead letter
        path = item.removeprefix("file://")
        with open(path, encoding="utf-8") as f:
            return f.read()
