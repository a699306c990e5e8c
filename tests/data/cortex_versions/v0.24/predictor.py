class PythonPredictor:
    def __init__(self, config, python_client):
        self.client = python_client

    def load_model(self, model_path):
        return model_path

    def predict(self, payload, query_params):
        return {"model": str(self.client.get_model(query_params.get("model")))}
