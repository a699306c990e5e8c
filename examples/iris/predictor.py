# Cortex's iris classifier (examples/sklearn/iris-classifier), loading the model from a path in
# the project (given in predictor.config) instead of S3.
import pickle

labels = ["setosa", "versicolor", "virginica"]


class PythonPredictor:
    def __init__(self, config):
        with open(config["model_path"], "rb") as model_file:  # relative to the project folder
            self.model = pickle.load(model_file)

    def predict(self, payload):
        measurements = [
            payload["sepal_length"],
            payload["sepal_width"],
            payload["petal_length"],
            payload["petal_width"],
        ]

        label_id = self.model.predict([measurements])[0]
        return labels[label_id]
